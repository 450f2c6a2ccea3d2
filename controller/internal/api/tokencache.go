package api

import (
	"sync"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// tokenCache remembers recent authentications so that a request does not
// cost a database round trip for its token. Entries live briefly, and the
// whole cache is dropped when any token is revoked: at once on the replica
// that revoked it, and on the others when the revocation's notification
// arrives.
type tokenCache struct {
	mu      sync.Mutex
	ttl     time.Duration
	entries map[string]cachedToken
}

type cachedToken struct {
	tok openapi.Token
	exp time.Time
}

// maxCachedTokens bounds the cache; past it, it starts over.
const maxCachedTokens = 10000

func newTokenCache(ttl time.Duration) *tokenCache {
	return &tokenCache{ttl: ttl, entries: map[string]cachedToken{}}
}

func (c *tokenCache) get(secret string) (openapi.Token, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[secret]
	if !ok || time.Now().After(e.exp) {
		return openapi.Token{}, false
	}
	return e.tok, true
}

func (c *tokenCache) put(secret string, t openapi.Token) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCachedTokens {
		c.entries = map[string]cachedToken{}
	}
	c.entries[secret] = cachedToken{tok: t, exp: time.Now().Add(c.ttl)}
}

func (c *tokenCache) clear() {
	c.mu.Lock()
	c.entries = map[string]cachedToken{}
	c.mu.Unlock()
}
