package console

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromium finds Debian's chromium: the test is skipped without it, except
// in CI (CI set), where that fails.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed: run deploy/local/deps.sh")
	}
	t.Skip("chromium is not installed (deploy/local/deps.sh installs it)")
	return ""
}

// browser is one headless chromium for a test; tabs share it.
type browser struct {
	ctx context.Context
}

func newBrowser(t testing.TB, width, height int) *browser {
	t.Helper()
	path := chromium(t)
	// Our own profile directory: chromedp removes its own as soon as the
	// browser's main process exits, and a helper process still writing
	// into it then leaves it behind.
	var started *exec.Cmd // the browser's main process
	profile, err := os.MkdirTemp("", "switchyard-console-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(width, height), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(profile),
		// Its own process group, so that its helper processes end with it.
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
			started = cmd
		}))

	if os.Getenv("SWITCHYARD_CONSOLE_BROWSER_LOG") != "" {
		opts = append(opts, chromedp.CombinedOutput(os.Stderr))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// chromedp's complaints (DOM events it does not know) go to the
	// test's log, not stderr.
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser's main process
		if started != nil && started.Process != nil {
			endGroup(t, started.Process.Pid)
		}
		removeProfile(t, profile)
	})
	if err := chromedp.Run(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{ctx: ctx}
}

// endGroup kills what is left of the browser's process group (its helper
// processes outlive the main one by a moment) and waits until it is gone.
func endGroup(t testing.TB, pgid int) {
	syscall.Kill(-pgid, syscall.SIGKILL) //nolint:errcheck // ESRCH: already gone
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(deadline) {
			t.Logf("chromium process group %d still there", pgid)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeProfile removes the browser's profile directory.
func removeProfile(t testing.TB, dir string) {
	if err := os.RemoveAll(dir); err != nil {
		t.Logf("chromium profile %s: %v", dir, err)
	}
}

// tab is one page with its own session storage, recording what the
// browser logs: exceptions, console errors and warnings, failed requests
// and answers >= 400.
type tab struct {
	t       testing.TB
	ctx     context.Context
	mu      sync.Mutex
	logs    []string
	allowed []string // substrings of log lines a scenario expects
	bytes   map[network.RequestID]float64
}

func (b *browser) tab(t testing.TB) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	tb := &tab{t: t, ctx: ctx, bytes: map[network.RequestID]float64{}}
	urls := map[network.RequestID]string{}
	chromedp.ListenTarget(ctx, func(ev any) {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		switch e := ev.(type) {
		case *cdpruntime.EventExceptionThrown:
			tb.logs = append(tb.logs, "exception: "+e.ExceptionDetails.Error())
		case *cdpruntime.EventConsoleAPICalled:
			if e.Type == cdpruntime.APITypeError || e.Type == cdpruntime.APITypeWarning || e.Type == cdpruntime.APITypeAssert {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, strings.Trim(string(a.Value), `"`)+a.Description)
				}
				tb.logs = append(tb.logs, fmt.Sprintf("console.%s: %s", e.Type, strings.Join(parts, " ")))
			}
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.LevelError || e.Entry.Level == cdplog.LevelWarning {
				tb.logs = append(tb.logs, fmt.Sprintf("log %s: %s %s", e.Entry.Level, e.Entry.Text, e.Entry.URL))
			}
		case *network.EventRequestWillBeSent:
			urls[e.RequestID] = e.Request.Method + " " + e.Request.URL
		case *network.EventResponseReceived:
			if e.Response.Status >= 400 {
				tb.logs = append(tb.logs, fmt.Sprintf("HTTP %d %s", e.Response.Status, urls[e.RequestID]))
			}
		case *network.EventLoadingFailed:
			if !e.Canceled {
				tb.logs = append(tb.logs, fmt.Sprintf("failed %s: %s", urls[e.RequestID], e.ErrorText))
			}
		case *network.EventLoadingFinished:
			tb.bytes[e.RequestID] = e.EncodedDataLength
		}
	})
	if err := chromedp.Run(ctx, network.Enable(), cdplog.Enable(), cdpruntime.Enable(), page.BringToFront()); err != nil {
		t.Fatal(err)
	}
	return tb
}

// run runs actions with a deadline, failing the test on error.
func (tb *tab) run(what string, timeout time.Duration, actions ...chromedp.Action) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, timeout)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v\nbrowser log:\n%s\npage:\n%s", what, err, strings.Join(tb.logLines(), "\n"), tb.pageText())
	}
}

// pageText is the URL and the text of the page, for a failure's message.
func (tb *tab) pageText() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 3*time.Second)
	defer cancel()
	var out string
	if err := chromedp.Run(ctx, chromedp.Evaluate(`location.href + "\n" + document.body.innerText.slice(0, 3000)`, &out)); err != nil {
		return err.Error()
	}
	return out
}

// allowHTTP marks an answer the test provokes (a 400 for bad input) as
// expected: the network line and chromium's own log line for it.
func (tb *tab) allowHTTP(status int, method, url string) {
	tb.mu.Lock()
	tb.allowed = append(tb.allowed, fmt.Sprintf("HTTP %d %s %s", status, method, url),
		fmt.Sprintf("status of %d (%s) %s", status, http.StatusText(status), url))
	tb.mu.Unlock()
}

// allowConnectionErrors marks the browser's lines about a controller that
// went away (refused or cut connections) as expected.
func (tb *tab) allowConnectionErrors() {
	tb.mu.Lock()
	tb.allowed = append(tb.allowed, "net::ERR_CONNECTION_REFUSED", "net::ERR_INCOMPLETE_CHUNKED_ENCODING",
		"net::ERR_EMPTY_RESPONSE", "net::ERR_CONNECTION_RESET", "net::ERR_CONNECTION_CLOSED")
	tb.mu.Unlock()
}

func (tb *tab) logLines() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.logs...)
}

// unexpected are the log lines no allow covers.
func (tb *tab) unexpected() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var out []string
next:
	for _, l := range tb.logs {
		for _, a := range tb.allowed {
			if strings.Contains(l, a) {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}

// transferred is the bytes received over the network since the last call.
func (tb *tab) transferred() float64 {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var n float64
	for _, b := range tb.bytes {
		n += b
	}
	clear(tb.bytes)
	return n
}

// signIn opens the console at path with the token in the URL fragment (as
// make run prints it) and waits until the page at path has rendered.
func (tb *tab) signIn(base, token, path, ready string) {
	tb.t.Helper()
	tb.run("sign in", 20*time.Second, chromedp.Navigate(base+path+"#token="+token), visible(ready))
}

// screenshot saves the page as name.png into $SWITCHYARD_ARTIFACTS (else
// the test's temporary directory, removed with it) and, with SWITCHYARD_CONSOLE_DOCS set, into
// docs/console/.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	var png []byte
	tb.run("screenshot "+name, 20*time.Second, page.BringToFront(), chromedp.CaptureScreenshot(&png))
	dir := os.Getenv("SWITCHYARD_ARTIFACTS")
	if dir == "" {
		dir = tb.t.TempDir()
	}
	dirs := []string{dir}
	if os.Getenv("SWITCHYARD_CONSOLE_DOCS") != "" {
		dirs = append(dirs, filepath.Join("..", "..", "docs", "console"))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, name+".png"), png, 0o644); err != nil {
			tb.t.Fatal(err)
		}
	}
}

// The waits and reads below run in the page, by selector: the pages
// re-render on every event, so a node looked up over the protocol may be
// gone by the time the next command names it.

// visible waits until sel matches an element with a layout box (for an
// <option>: one that exists).
func visible(sel string) chromedp.Action {
	return waitJS(fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && (e.tagName === "OPTION" || e.getClientRects().length > 0); })()`, sel), 20*time.Second)
}

// text waits for sel, then reads its text.
func text(sel string, out *string) chromedp.Action {
	return chromedp.Tasks{visible(sel), chromedp.Evaluate(fmt.Sprintf(`document.querySelector(%q).textContent`, sel), out)}
}

// nodes counts the nodes sel matches now (no wait).
func count(sel string, n *int) chromedp.Action {
	return chromedp.Evaluate(fmt.Sprintf(`document.querySelectorAll(%q).length`, sel), n)
}

// waitJS polls a JavaScript condition until it holds.
func waitJS(cond string, timeout time.Duration) chromedp.Action {
	var ok bool
	return chromedp.Poll(cond, &ok, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(10*time.Millisecond))
}

// fill sets a form field's value (waiting until the field, and for a
// select the option, exists) and fires input and change as a user would.
func fill(sel, value string) chromedp.Action {
	return waitJS(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false;
		e.value = %q; if (e.value !== %q) return false;
		e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); return true; })()`, sel, value, value), 10*time.Second)
}

// click clicks the element sel matches once it exists, in the page: a
// live update may replace the element between a lookup over the protocol
// and a click on it.
func click(sel string) chromedp.Action {
	return waitJS(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.click(); return true; })()`, sel), 10*time.Second)
}

// fulfill answers the tab's requests matching pattern (a Fetch URL
// pattern) with status and body instead of the server, until stop.
func (tb *tab) fulfill(pattern string, status int64, body []byte) (stop func()) {
	tb.t.Helper()
	ctx, cancel := context.WithCancel(tb.ctx)
	chromedp.ListenTarget(ctx, func(ev any) {
		if e, ok := ev.(*fetch.EventRequestPaused); ok {
			go func() {
				c := chromedp.FromContext(tb.ctx)
				_ = fetch.FulfillRequest(e.RequestID, status).
					WithResponseHeaders([]*fetch.HeaderEntry{{Name: "Content-Type", Value: "application/json"}}).
					WithBody(base64.StdEncoding.EncodeToString(body)).Do(cdp.WithExecutor(tb.ctx, c.Target))
			}()
		}
	})
	tb.run("intercept "+pattern, 5*time.Second, fetch.Enable().WithPatterns([]*fetch.RequestPattern{{URLPattern: pattern}}))
	return func() {
		cancel()
		tb.run("stop intercepting", 5*time.Second, fetch.Disable())
	}
}
