package console

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/switchyard/switchyard/openapi"
)

// liveDeadline is how soon a change made through the API must show in an
// open page (issue 12: within a second, without reload or polling).
const liveDeadline = time.Second

// TestConsole drives the console in headless chromium against a real
// controller with two simulated agents (h1, h2): sign-in, the create forms
// (realized, then in the topology), a field error from the server, live
// updates, move, the reachability matrix following a policy, a viewer's
// read-only pages, and every page rendered without an error in the
// browser's log (screenshots of each).
func TestConsole(t *testing.T) {
	chromium(t)
	s := startServer(t)
	s.agents(t, "h1", "h2")
	b := newBrowser(t, 1280, 900)
	tb := b.tab(t)

	t.Run("sign-in", func(t *testing.T) {
		tb.t = t
		tb.run("sign-in form", 20*time.Second, chromedp.Navigate(s.URL+"/"), visible(`input[name=token]`))
		tb.screenshot("signin")
		// A wrong token is refused next to the field.
		tb.allowHTTP(401, "GET", s.URL+"/api/v1/whoami")
		var msg string
		tb.run("wrong token", 10*time.Second, chromedp.SendKeys(`input[name=token]`, "sy_wrong", chromedp.ByQuery),
			click(`form.signin button[type=submit]`), text(`.field-error[data-field=token]`, &msg))
		if !strings.Contains(msg, "not valid") {
			t.Errorf("wrong token: %q", msg)
		}
		var who string
		tb.run("sign in", 10*time.Second, fill(`input[name=token]`, adminToken),
			click(`form.signin button[type=submit]`), visible(`#nav a[data-page=tokens]`),
			text(`#whoami`, &who))
		if !strings.Contains(who, "(admin)") {
			t.Errorf("whoami shows %q", who)
		}
		// The overview lists each host's agent version, as it registered.
		tb.run("agent versions", 10*time.Second, click(`#nav a[data-page=overview]`),
			waitJS(`document.querySelector('main')?.textContent.includes('sim-agent 1.0')`, 10*time.Second))
	})

	t.Run("create-network-form", func(t *testing.T) {
		tb.t = t
		tb.run("create network", 20*time.Second, click(`#nav a[data-page=networks]`),
			visible(`form[aria-label="Create network"]`),
			fill(`form input[name=name]`, "blue"),
			fill(`form input[name=cidr]`, "10.10.0.0/24"),
			click(`form button[type=submit]`),
			visible(`tr[data-key="blue"]`),
			// The form is free again once the write has answered.
			waitJS(`document.querySelector('.progress')?.textContent.includes('realized') && !document.querySelector('form button[type=submit]').disabled`, 20*time.Second))
	})

	t.Run("bad-cidr-field-error", func(t *testing.T) {
		tb.t = t
		tb.allowHTTP(400, "POST", s.URL+"/api/v1/networks?wait=realized&timeout=10s")
		var msg string
		tb.run("bad cidr", 20*time.Second,
			fill(`form input[name=name]`, "bad"),
			fill(`form input[name=cidr]`, "10.10.0.0/33"),
			click(`form button[type=submit]`),
			text(`label .field-error[data-field=cidr]`, &msg))
		if !strings.Contains(strings.ToLower(msg), "cidr") {
			t.Errorf("field error %q does not name the CIDR", msg)
		}
		var invalid bool
		tb.run("aria-invalid", 5*time.Second, chromedp.Evaluate(`document.querySelector('input[name=cidr]').getAttribute('aria-invalid') === 'true'`, &invalid))
		if !invalid {
			t.Error("the cidr field is not marked invalid")
		}
		tb.screenshot("networks-field-error")
	})

	t.Run("create-container-form-realized-in-topology", func(t *testing.T) {
		tb.t = t
		var progress string
		tb.run("create container", 30*time.Second, click(`#nav a[data-page=containers]`),
			visible(`form[aria-label="Create container"] option[value=h1]`),
			fill(`form input[name=name]`, "web-1"),
			fill(`form select[name=network]`, "blue"),
			fill(`form select[name=host]`, "h1"),
			fill(`form input[name=labels]`, "app=web"),
			click(`form button[type=submit]`),
			waitJS(`document.querySelector('.progress')?.textContent.includes('realized')`, 20*time.Second),
			text(`.progress`, &progress),
			visible(`tr[data-key="blue/web-1"]`))
		if !strings.Contains(progress, "realized on every host") {
			t.Errorf("progress line %q", progress)
		}
		tb.run("running", 10*time.Second, waitJS(`document.querySelector('tr[data-key="blue/web-1"] .badge')?.textContent === 'running'`, 10*time.Second))
		tb.run("topology", 10*time.Second, click(`#nav a[data-page=topology]`),
			visible(`[data-host=h1] a.node[data-name="web-1"]`))
	})

	t.Run("api-change-live-within-1s", func(t *testing.T) {
		tb.t = t
		tb.run("containers page", 10*time.Second, click(`#nav a[data-page=containers]`),
			visible(`tr[data-key="blue/web-1"]`),
			chromedp.Evaluate(`window.__notReloaded = true`, nil))
		s.must(t, "POST", "/api/v1/containers", map[string]any{"name": "web-2", "network": "blue", "host": "h2", "labels": map[string]string{"app": "web"}}, nil)
		start := time.Now()
		tb.run("web-2 appears", liveDeadline+5*time.Second, waitJS(`document.querySelector('tr[data-key="blue/web-2"]') !== null`, liveDeadline+5*time.Second))
		if d := time.Since(start); d > liveDeadline {
			t.Errorf("the container showed %v after the API write, want <= %v", d, liveDeadline)
		}
		// Its status follows its host's report (a host-status event), not
		// a reload: pending, then running once h2's agent applied it.
		tb.run("web-2 running", 15*time.Second, waitJS(`document.querySelector('tr[data-key="blue/web-2"] .badge')?.textContent === 'running'`, 15*time.Second))
		t.Logf("web-2 shown running %v after the API write", time.Since(start).Round(time.Millisecond))
		var kept bool
		tb.run("no reload", 5*time.Second, chromedp.Evaluate(`window.__notReloaded === true`, &kept))
		if !kept {
			t.Error("the page reloaded")
		}
		// A delete through the API disappears as fast.
		s.must(t, "DELETE", "/api/v1/containers/web-2?network=blue", nil, nil)
		start = time.Now()
		tb.run("web-2 goes", liveDeadline+5*time.Second, waitJS(`document.querySelector('tr[data-key="blue/web-2"]') === null`, liveDeadline+5*time.Second))
		if d := time.Since(start); d > liveDeadline {
			t.Errorf("the deleted container went %v after the API write, want <= %v", d, liveDeadline)
		}
	})

	t.Run("move-changes-host", func(t *testing.T) {
		tb.t = t
		var host, block string
		tb.run("move", 30*time.Second, click(`tr[data-key="blue/web-1"] td:first-child a`),
			visible(`form[aria-label="Move container"] option[value=h2]`),
			fill(`form[aria-label="Move container"] select`, "h2"),
			click(`form[aria-label="Move container"] button[type=submit]`),
			waitJS(`document.querySelector('dd[data-field=host]')?.textContent === 'h2'`, 20*time.Second),
			text(`dd[data-field=host]`, &host), text(`dd[data-field=ipBlock]`, &block))
		var c openapi.Container
		s.must(t, "GET", "/api/v1/containers/web-1?network=blue", nil, &c)
		if host != "h2" || c.Host != "h2" {
			t.Errorf("after the move the page shows %q, the API %q", host, c.Host)
		}
		// Its address stays in h1's IPAM block: borrowed on h2.
		if wantBlock := "(borrowed: routed on its own)"; c.IPBlock != "" || block != wantBlock {
			t.Errorf("after the move the page shows block %q, the API %q; want %q and none", block, c.IPBlock, wantBlock)
		}
		tb.screenshot("container")
	})

	t.Run("reachability-follows-policy", func(t *testing.T) {
		tb.t = t
		s.must(t, "POST", "/api/v1/containers", map[string]any{"name": "db-1", "network": "blue", "host": "h1", "labels": map[string]string{"app": "db"}}, nil)
		cell := `td[data-from="web-1"][data-to="db-1"]`
		tb.run("matrix", 20*time.Second, click(`#nav a[data-page=reachability]`),
			visible(`select[name=network] option[value=blue]`),
			fill(`select[name=network]`, "blue"),
			visible(cell+`.allow`))
		s.must(t, "POST", "/api/v1/policies", map[string]any{"name": "db-isolated", "network": "blue", "selector": "app=db", "ingress": []any{}, "log": true}, nil)
		start := time.Now()
		tb.run("matrix after the policy", liveDeadline+5*time.Second, waitJS(`document.querySelector('`+cell+`.deny') !== null`, liveDeadline+5*time.Second))
		if d := time.Since(start); d > liveDeadline {
			t.Errorf("the matrix changed %v after the policy was created, want <= %v", d, liveDeadline)
		}
		var title string
		tb.run("hover", 5*time.Second, chromedp.Evaluate(`document.querySelector('`+cell+`').title`, &title))
		if !strings.Contains(title, "db-isolated") {
			t.Errorf("the cell's title does not name the deciding policy: %q", title)
		}
		tb.screenshot("reachability")
	})

	t.Run("service-and-policy-forms", func(t *testing.T) {
		tb.t = t
		tb.run("create service", 30*time.Second, click(`#nav a[data-page=services]`),
			fill(`form[aria-label="Create service"] input[name=name]`, "api"),
			fill(`form[aria-label="Create service"] select[name=network]`, "blue"),
			fill(`form[aria-label="Create service"] input[name=selector]`, "app=web"),
			fill(`form[aria-label="Create service"] input[name=ports]`, "8080, 53/UDP"),
			click(`form[aria-label="Create service"] button[type=submit]`),
			visible(`tr[data-key="blue/api"]`))
		// A port the server refuses is shown next to the rule's ports.
		tb.allowHTTP(400, "POST", s.URL+"/api/v1/policies?wait=realized&timeout=10s")
		var msg string
		tb.run("policy with a bad port", 30*time.Second, click(`#nav a[data-page=policies]`),
			fill(`form[aria-label="Create policy"] input[name=name]`, "web-from-db"),
			fill(`form[aria-label="Create policy"] select[name=network]`, "blue"),
			fill(`form[aria-label="Create policy"] input[name=selector]`, "app=web"),
			fill(`form[aria-label="Create policy"] input[name=peers]`, "app=db"),
			fill(`form[aria-label="Create policy"] input[name=ports]`, "70000"),
			click(`form[aria-label="Create policy"] button[type=submit]`),
			text(`form[aria-label="Create policy"] label .field-error`, &msg))
		if !strings.Contains(msg, "port") {
			t.Errorf("the ports field says %q", msg)
		}
		tb.run("policy", 30*time.Second, fill(`form[aria-label="Create policy"] input[name=ports]`, "80"),
			click(`form[aria-label="Create policy"] button[type=submit]`),
			visible(`tr[data-key="blue/web-from-db"]`))
		var p openapi.Policy
		s.must(t, "GET", "/api/v1/policies/web-from-db?network=blue", nil, &p)
		if len(p.Ingress) != 1 || len(p.Ingress[0].Peers) != 1 || p.Ingress[0].Peers[0].Selector == nil || *p.Ingress[0].Peers[0].Selector != "app=db" ||
			len(p.Ingress[0].Ports) != 1 || p.Ingress[0].Ports[0].Port != 80 {
			t.Errorf("the form made %+v", p)
		}
	})

	t.Run("every-page-no-errors", func(t *testing.T) {
		tb.t = t
		s.must(t, "POST", "/api/v1/services", map[string]any{"name": "web", "network": "blue", "selector": "app=web", "ports": []map[string]any{{"port": 80}}}, nil)
		pages := []struct{ name, path, ready string }{
			{"overview", "/overview", `.cards`},
			{"network", "/networks/blue", `dl.props`},
			{"topology", "/topology", `.topo-hosts`},
			{"hosts", "/hosts", `tr[data-key=h1]`},
			{"host", "/hosts/h1", `dl.props`},
			{"networks", "/networks", `tr[data-key=blue]`},
			{"containers", "/containers", `tr[data-key="blue/web-1"]`},
			{"services", "/services", `tr[data-key="blue/web"]`},
			{"service", "/services/blue/web", `table[aria-label=Endpoints]`},
			{"policies", "/policies", `tr[data-key="blue/db-isolated"]`},
			{"policy", "/policies/blue/db-isolated", `table[aria-label="Rule counters"]`},
			{"reachability", "/reachability/blue?port=80", `table.matrix`},
			{"events", "/events", `table[aria-label=Events]`},
			{"tokens", "/tokens", `table[aria-label=Tokens]`},
			{"audit", "/audit", `table[aria-label="Audit log"]`},
		}
		for _, p := range pages {
			// Deep links: each page loads from its own URL.
			tb.run(p.name, 20*time.Second, chromedp.Navigate(s.URL+p.path), visible(p.ready))
			tb.screenshot(p.name)
		}
		// A filter in the URL is applied once the lists have loaded.
		tb.run("deep-linked filter", 10*time.Second, chromedp.Navigate(s.URL+"/containers?host=h1"),
			waitJS(`document.querySelector('select[name=host]')?.value === 'h1' && document.querySelector('tr[data-key="blue/db-1"]') !== null &&
				document.querySelector('tr[data-key="blue/web-1"]') === null`, 10*time.Second))
		tb.run("dark theme", 10*time.Second, chromedp.Navigate(s.URL+"/topology"), visible(`.topo-hosts`),
			chromedp.Evaluate(`document.documentElement.dataset.theme = 'dark'`, nil))
		tb.screenshot("topology-dark")
		if bad := tb.unexpected(); len(bad) > 0 {
			t.Errorf("the browser logged:\n%s", strings.Join(bad, "\n"))
		}
	})

	t.Run("trace", func(t *testing.T) {
		tb.t = t
		// Without POST /api/v1/traces (issue 14 is built on another branch)
		// the page says so; with it, it shows the real trace.
		tb.allowHTTP(404, "POST", s.URL+"/api/v1/traces")
		var msg string
		tb.run("real endpoint or none", 30*time.Second, chromedp.Navigate(s.URL+"/trace?network=blue&from=web-1&kind=container&to=db-1&protocol=TCP&port=80"),
			waitJS(`document.querySelector('.page-trace .form-error, .trace [data-conclusion]') !== null`, 30*time.Second),
			chromedp.Evaluate(`document.querySelector('.page-trace .form-error, .trace [data-conclusion]').textContent`, &msg))
		if !strings.Contains(msg, "no trace endpoint") && !strings.Contains(msg, "db-1") {
			t.Errorf("the trace page says %q", msg)
		}
		// ...and renders an answer shaped as its contract says (a canned
		// one, served in the browser in place of the controller's).
		canned, err := os.ReadFile("testdata/trace.json")
		if err != nil {
			t.Fatal(err)
		}
		stop := tb.fulfill("*/api/v1/traces", 200, canned)
		defer stop()
		var conclusion string
		tb.run("canned trace", 20*time.Second, chromedp.Navigate(s.URL+"/trace?network=blue&from=web-1&kind=container&to=db-1&protocol=TCP&port=80"),
			text(`.trace [data-conclusion]`, &conclusion), visible(`.trace table`))
		if !strings.Contains(conclusion, "db-isolated") {
			t.Errorf("conclusion %q", conclusion)
		}
		tb.screenshot("trace")
	})

	t.Run("keyboard", func(t *testing.T) {
		tb.t = t
		var focused string
		tb.run("g n, then j", 10*time.Second, chromedp.Navigate(s.URL+"/overview"), visible(`.cards`),
			chromedp.KeyEvent("g"), chromedp.KeyEvent("n"), visible(`.page-networks tr[data-key=blue]`),
			chromedp.KeyEvent("j"), chromedp.Evaluate(`document.activeElement.textContent`, &focused),
			chromedp.KeyEvent("\r"), visible(`.page-networks dl.props`))
		if focused != "blue" {
			t.Errorf("j focused %q, want the first row's link", focused)
		}
		tb.run("help", 5*time.Second, chromedp.KeyEvent("?"), visible(`#help[open]`), chromedp.KeyEvent("\x1b"))
	})

	t.Run("dark-by-system-or-toggle", func(t *testing.T) {
		tb.t = t
		bg := `getComputedStyle(document.body).backgroundColor`
		var light, dark, forced string
		tb.run("themes", 20*time.Second, chromedp.Navigate(s.URL+"/overview"), visible(`.cards`),
			emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}}),
			chromedp.Evaluate(bg, &light),
			emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}),
			chromedp.Evaluate(bg, &dark),
			// The toggle cycles system -> light -> dark; light wins over the system's dark.
			click(`#theme`), chromedp.Evaluate(bg, &forced),
			click(`#theme`), click(`#theme`), // back to system
			emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}}))
		if light == dark || forced != light {
			t.Errorf("background: system light %s, system dark %s, forced light under a dark system %s", light, dark, forced)
		}
	})

	t.Run("viewer-cannot-delete", func(t *testing.T) {
		var tok openapi.Token
		s.must(t, "POST", "/api/v1/tokens", map[string]any{"name": "alice", "role": "viewer"}, &tok)
		vt := b.tab(t)
		vt.signIn(s.URL, tok.Secret, "/containers", `tr[data-key="blue/web-1"]`)
		var buttons, forms, tokensLink int
		vt.run("read-only", 5*time.Second, count(`button[data-action=delete]`, &buttons), count(`form.create`, &forms), count(`#nav a[data-page=tokens]`, &tokensLink))
		if buttons != 0 || forms != 0 || tokensLink != 0 {
			t.Errorf("a viewer sees %d delete buttons, %d create forms, %d links to tokens", buttons, forms, tokensLink)
		}
		vt.run("container page", 10*time.Second, chromedp.Navigate(s.URL+"/containers/blue/web-1"), visible(`dl.props`),
			count(`button[data-action=delete], form[aria-label="Move container"]`, &buttons))
		if buttons != 0 {
			t.Errorf("a viewer sees %d delete or move controls on a container", buttons)
		}
		// The server enforces it too.
		if code, _ := s.do(t.Context(), tok.Secret, "DELETE", "/api/v1/containers/web-1?network=blue", nil, nil); code != 403 {
			t.Errorf("a viewer's DELETE: %d, want 403", code)
		}
		vt.screenshot("viewer-containers")
		if bad := vt.unexpected(); len(bad) > 0 {
			t.Errorf("the browser logged:\n%s", strings.Join(bad, "\n"))
		}
	})

	t.Run("phone-width", func(t *testing.T) {
		pb := newBrowser(t, 390, 844)
		pt := pb.tab(t)
		pt.signIn(s.URL, adminToken, "/containers", `tr[data-key="blue/web-1"]`)
		pt.screenshot("phone-containers")
		for _, p := range []struct{ path, ready string }{
			{"/containers", `tr[data-key="blue/web-1"]`}, {"/overview", `.cards`}, {"/topology", `.topo-hosts`},
			{"/networks/blue", `dl.props`}, {"/policies", `tr[data-key="blue/db-isolated"]`},
			{"/reachability/blue?port=80", `table.matrix`}, {"/trace", `form[aria-label=Trace]`}, {"/audit", `table[aria-label="Audit log"]`},
		} {
			var fits bool
			pt.run(p.path, 20*time.Second, chromedp.Navigate(s.URL+p.path), visible(p.ready),
				chromedp.Evaluate(`document.documentElement.scrollWidth <= window.innerWidth + 1`, &fits))
			if !fits {
				t.Errorf("%s is wider than a phone screen", p.path)
			}
		}
		if bad := pt.unexpected(); len(bad) > 0 {
			t.Errorf("the browser logged:\n%s", strings.Join(bad, "\n"))
		}
	})

	// Last: it stops the controller under the open page.
	t.Run("reconnect-resumes-from-last-revision", func(t *testing.T) {
		tb.t = t
		tb.allowConnectionErrors()
		tb.run("containers page", 20*time.Second, chromedp.Navigate(s.URL+"/containers"), visible(`tr[data-key="blue/web-1"]`),
			waitJS(`document.getElementById('live').classList.contains('on')`, 10*time.Second),
			chromedp.Evaluate(`window.__notReloaded = true`, nil))
		s.stop()
		tb.run("disconnected", 20*time.Second, waitJS(`document.getElementById('live').classList.contains('off')`, 20*time.Second))
		s.start(t)
		// Written as soon as the controller is back, possibly before the
		// page reconnects: the resume (since) must bring it.
		s.must(t, "POST", "/api/v1/containers", map[string]any{"name": "web-3", "network": "blue", "host": "h1"}, nil)
		var kept bool
		tb.run("resumed", 30*time.Second, waitJS(`document.querySelector('tr[data-key="blue/web-3"]') !== null`, 30*time.Second),
			waitJS(`document.getElementById('live').classList.contains('on')`, 10*time.Second),
			chromedp.Evaluate(`window.__notReloaded === true`, &kept))
		if !kept {
			t.Error("the page reloaded")
		}
		if bad := tb.unexpected(); len(bad) > 0 {
			t.Errorf("the browser logged:\n%s", strings.Join(bad, "\n"))
		}
	})
}
