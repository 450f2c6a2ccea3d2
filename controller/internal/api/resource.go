package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/controller/internal/selector"
	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/openapi"
)

// resource is one kind's CRUD, wired to the store. Unscoped kinds ignore
// the network argument.
type resource[T any] struct {
	kind           string
	scoped, hosted bool
	list           func(ctx context.Context, o store.ListOptions) ([]T, string, error)
	get            func(ctx context.Context, ref, network string) (T, error)
	create         func(ctx context.Context, actor string, v T) (T, error)
	update         func(ctx context.Context, actor, ref, network string, ifMatch int64, v T) (T, error)
	del            func(ctx context.Context, actor, ref, network string, ifMatch int64) (int64, error)
	meta           func(*T) *openapi.Meta
	// readOnly names the fields an update may not change (from the contract).
	readOnly []string
	// decorate, when set, adds what the store does not know to an answer.
	decorate func(*T)
}

// unscoped wires a kind whose names are global: its store calls take no
// network.
func unscoped[T any](kind string,
	list func(context.Context, store.ListOptions) ([]T, string, error),
	get func(ctx context.Context, ref string) (T, error),
	create func(ctx context.Context, actor string, v T) (T, error),
	update func(ctx context.Context, actor, ref string, ifMatch int64, v T) (T, error),
	del func(ctx context.Context, actor, ref string, ifMatch int64) (int64, error),
	meta func(*T) *openapi.Meta,
) resource[T] {
	return resource[T]{
		kind: kind, list: list, create: create, meta: meta,
		get: func(ctx context.Context, ref, _ string) (T, error) { return get(ctx, ref) },
		update: func(ctx context.Context, actor, ref, _ string, ifMatch int64, v T) (T, error) {
			return update(ctx, actor, ref, ifMatch, v)
		},
		del: func(ctx context.Context, actor, ref, _ string, ifMatch int64) (int64, error) {
			return del(ctx, actor, ref, ifMatch)
		},
	}
}

// path is the contract's path of one object of the kind.
func (r resource[T]) path() string { return "/api/v1/" + r.kind + "/{ref}" }

// mount registers the five routes of a kind.
func mount[T any](s *Server, g *gin.RouterGroup, r resource[T], read, write gin.HandlerFunc) {
	base := "/" + r.kind
	r.readOnly = s.contract.readOnlyFields(r.path())
	g.GET(base, read, r.handleList)
	g.POST(base, write, func(c *gin.Context) { r.handleCreate(s, c) })
	g.GET(base+"/:ref", read, r.handleGet)
	g.PUT(base+"/:ref", write, func(c *gin.Context) { r.handleUpdate(s, c, false) })
	g.PATCH(base+"/:ref", write, func(c *gin.Context) { r.handleUpdate(s, c, true) })
	g.DELETE(base+"/:ref", write, func(c *gin.Context) { r.handleDelete(s, c) })
}

func (r resource[T]) handleList(c *gin.Context) {
	o, err := listOptions(c)
	if err != nil {
		fail(c, err)
		return
	}
	if !r.scoped {
		o.Network = ""
	}
	if !r.hosted {
		o.Host = ""
	}
	items, next, err := r.list(c.Request.Context(), o)
	if err != nil {
		fail(c, err)
		return
	}
	if r.decorate != nil {
		for i := range items {
			r.decorate(&items[i])
		}
	}
	c.JSON(http.StatusOK, openapi.List[T]{Items: items, Continue: next})
}

func (r resource[T]) handleGet(c *gin.Context) {
	v, err := r.get(c.Request.Context(), c.Param("ref"), c.Query("network"))
	if err != nil {
		fail(c, err)
		return
	}
	r.reply(c, http.StatusOK, &v)
}

func (r resource[T]) handleCreate(s *Server, c *gin.Context) {
	w, err := parseWrite(c)
	var v, out T
	if err == nil {
		err = decode(c, &v)
	}
	if err == nil {
		out, err = r.create(c.Request.Context(), actor(c), v)
	}
	s.answer(c, w, err, r.meta(&out).Revision, func() {
		r.refresh(c, w, &out)
		c.Header("Location", c.Request.URL.Path+"/"+r.meta(&out).ID)
		r.reply(c, http.StatusCreated, &out)
	})
}

func (r resource[T]) handleUpdate(s *Server, c *gin.Context, patch bool) {
	w, err := parseWrite(c)
	ctx, ref, network := c.Request.Context(), c.Param("ref"), c.Query("network")
	var body []byte
	var asked map[string]any
	var v, cur, out T
	if err == nil {
		body, asked, err = readObject(c)
	}
	if err == nil && !patch {
		err = unmarshalStrict(body, &v)
	}
	if err == nil {
		cur, err = r.get(ctx, ref, network)
	}
	if err == nil {
		shown := cur
		if r.decorate != nil {
			r.decorate(&shown)
		}
		err = readOnlyChanged(asked, &shown, r.readOnly)
	}
	if err == nil && patch {
		if w.ifMatch == 0 {
			// Without If-Match, the patch applies to what we just read.
			w.ifMatch = r.meta(&cur).Revision
		}
		err = applyPatch(asked, &cur, &v, func(merged []byte) error { return s.contract.checkObject(r.path(), merged) })
	}
	if err == nil {
		out, err = r.update(ctx, actor(c), ref, network, w.ifMatch, v)
	}
	s.answer(c, w, err, r.meta(&out).Revision, func() {
		r.refresh(c, w, &out)
		r.reply(c, http.StatusOK, &out)
	})
}

func (r resource[T]) handleDelete(s *Server, c *gin.Context) {
	w, err := parseWrite(c)
	var rev int64
	if err == nil {
		rev, err = r.del(c.Request.Context(), actor(c), c.Param("ref"), c.Query("network"), w.ifMatch)
	}
	s.answer(c, w, err, rev, func() { c.Status(http.StatusNoContent) })
}

// refresh rereads a written object after waiting for its realization, so
// the answer shows its realized status.
func (r resource[T]) refresh(c *gin.Context, w writeOpts, v *T) {
	if !w.wait.realized {
		return
	}
	if fresh, err := r.get(c.Request.Context(), r.meta(v).ID, ""); err == nil {
		*v = fresh
	}
}

// writeOpts are what every write reads besides its body.
type writeOpts struct {
	ifMatch int64
	wait    waitOpts
}

func parseWrite(c *gin.Context) (writeOpts, error) {
	var w writeOpts
	var err error
	if w.ifMatch, err = parseIfMatch(c); err != nil {
		return w, err
	}
	w.wait, err = waitOptions(c)
	return w, err
}

// answer ends a write: the error if there is one, else, once realized when
// asked to wait, the reply.
func (s *Server) answer(c *gin.Context, w writeOpts, err error, rev int64, reply func()) {
	if err == nil {
		err = s.waitRealized(c, w.wait, rev)
	}
	if err != nil {
		fail(c, err)
		return
	}
	reply()
}

// reply writes an object with its ETag.
func (r resource[T]) reply(c *gin.Context, status int, v *T) {
	if r.decorate != nil {
		r.decorate(v)
	}
	c.Header("ETag", etag(r.meta(v).Revision))
	c.JSON(status, v)
}

func etag(rev int64) string { return `"` + strconv.FormatInt(rev, 10) + `"` }

// parseIfMatch reads If-Match: an ETag we issued, or * (any), or nothing.
func parseIfMatch(c *gin.Context) (int64, error) {
	h := strings.TrimSpace(c.GetHeader("If-Match"))
	if h == "" || h == "*" {
		return 0, nil
	}
	h = strings.TrimPrefix(h, "W/")
	v, err := strconv.ParseInt(strings.Trim(h, `"`), 10, 64)
	if err != nil || v <= 0 {
		return 0, problem.PreconditionFailed("If-Match %q is not an ETag of this API", h)
	}
	return v, nil
}

// listOptions reads selector, limit, continue, network and host.
func listOptions(c *gin.Context) (store.ListOptions, error) {
	o := store.ListOptions{Continue: c.Query("continue"), Network: c.Query("network"), Host: c.Query("host")}
	sel, err := selector.Parse(c.Query("selector"))
	if err != nil {
		return o, problem.Invalid("selector", "%v", err)
	}
	o.Selector = sel
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > store.MaxLimit {
			return o, problem.Invalid("limit", "limit must be a number from 1 to %d", store.MaxLimit)
		}
		o.Limit = n
	}
	return o, nil
}

type waitOpts struct {
	realized bool
	timeout  time.Duration
}

// DefaultWaitTimeout bounds ?wait=realized without ?timeout.
const DefaultWaitTimeout = 10 * time.Second

func waitOptions(c *gin.Context) (waitOpts, error) {
	w := waitOpts{timeout: DefaultWaitTimeout}
	switch c.Query("wait") {
	case "":
	case "realized":
		w.realized = true
	default:
		return w, problem.Invalid("wait", "wait must be 'realized'")
	}
	if t := c.Query("timeout"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 || d > 5*time.Minute {
			return w, problem.Invalid("timeout", "timeout must be a duration like 5s, at most 5m")
		}
		w.timeout = d
	}
	return w, nil
}

func (s *Server) waitRealized(c *gin.Context, w waitOpts, rev int64) error {
	if !w.realized || s.Realizer == nil {
		return nil
	}
	releaseAdmission(c) // committed: waiting for the hosts costs the store nothing
	return s.Realizer.WaitRealized(c.Request.Context(), rev, w.timeout)
}

func (s *Server) moveContainer(c *gin.Context) {
	var body struct {
		Host string `json:"host"`
	}
	w, err := parseWrite(c)
	if err == nil {
		err = decode(c, &body)
	}
	var out openapi.Container
	if err == nil {
		out, err = s.Store.MoveContainer(c.Request.Context(), actor(c), c.Param("ref"), c.Query("network"), body.Host)
	}
	s.answer(c, w, err, out.Revision, func() {
		if w.wait.realized {
			if fresh, err := s.Store.GetContainer(c.Request.Context(), out.ID, ""); err == nil {
				out = fresh
			}
		}
		c.Header("ETag", etag(out.Revision))
		c.JSON(http.StatusOK, out)
	})
}
