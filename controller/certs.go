package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certFiles serves the certificate of a pair of PEM files and loads it again
// when either file changes (looked at, at most once a second, when a client
// connects), so a renewed certificate is served without a restart. A pair
// that does not load (a renewal half written) leaves the previous one in
// service, and is logged.
type certFiles struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu      sync.Mutex
	cur     *tls.Certificate
	stamp   string    // the files' sizes and times when cur was loaded or last refused
	checked time.Time // when the files were last looked at
}

// certCheckEvery bounds how often the files are looked at.
const certCheckEvery = time.Second

// loadCertFiles loads the pair; an error here stops the start.
func loadCertFiles(certFile, keyFile string, log *slog.Logger) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	stamp, err := c.fileStamp()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	c.cur, c.stamp, c.checked = &cert, stamp, c.now()
	return c, nil
}

// fileStamp changes whenever either file is written or replaced.
func (c *certFiles) fileStamp() (string, error) {
	s := ""
	for _, f := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%d.%d/", fi.Size(), fi.ModTime().UnixNano())
	}
	return s, nil
}

// certificate is tls.Config.GetCertificate.
func (c *certFiles) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); now.Sub(c.checked) >= certCheckEvery {
		c.checked = now
		if stamp, err := c.fileStamp(); err == nil && stamp != c.stamp {
			c.stamp = stamp
			if cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile); err != nil {
				c.log.Error("TLS certificate changed but does not load: serving the previous one", "cert", c.certFile, "key", c.keyFile, "err", err)
			} else {
				c.cur = &cert
				c.log.Info("TLS certificate loaded again", "cert", c.certFile)
			}
		}
	}
	return c.cur, nil
}
