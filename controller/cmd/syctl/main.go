// Command syctl is Switchyard's command-line client: get, describe, create,
// apply, edit, delete, watch, wait and trace on the controller's objects through the
// REST API, with the types and client of package openapi (never its own
// copies). It must not hold domain logic (no validation the API does, no
// realization of its own): it turns arguments and files into API calls and
// answers into text. Exit codes: 0 ok, 1 error, 2 usage, 3 not found,
// 4 conflict (409, or 412 when a precondition failed). See docs/syctl.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/openapi/client"
)

// Exit codes.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitNotFound = 3
	exitConflict = 4
)

// version is the client's version, set at link time
// (-ldflags "-X main.version=...").
var version = "dev"

// ageFunc renders ages in tables (tests fix it).
var ageFunc = humanAge

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// env is what one invocation reads and writes: tests run many in one process.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string

	// Global flags.
	server, token, configPath, ca string

	// Age renders an object's age (tests fix it).
	age func(createdAt string) string
}

// run executes one syctl command line and returns its exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, age: ageFunc}
	root := e.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	fmt.Fprintln(stderr, "error: "+errorLine(err))
	if code == exitUsage {
		fmt.Fprintln(stderr, "Run 'syctl --help' for usage.")
	}
	return code
}

func (e *env) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "syctl",
		Short: "syctl controls a Switchyard SDN controller",
		Long: "syctl controls a Switchyard SDN controller through its REST API.\n\n" +
			"The server and token come from --server/--token, else SWITCHYARD_URL/SWITCHYARD_TOKEN,\n" +
			"else the config file 'syctl login' writes (" + "$SWITCHYARD_CONFIG, default ~/.config/switchyard/config.yaml).",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&e.server, "server", "", "controller URL, e.g. http://127.0.0.1:8080 (env SWITCHYARD_URL)")
	pf.StringVar(&e.token, "token", "", "API token (env SWITCHYARD_TOKEN)")
	pf.StringVar(&e.configPath, "config", "", "config file (env SWITCHYARD_CONFIG)")
	pf.StringVar(&e.ca, "ca", "", "PEM file of the CA that signs the controller's certificate (env SWITCHYARD_CA_FILE)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr{err} })
	root.AddCommand(e.loginCmd(), e.getCmd(), e.describeCmd(), e.createCmd(), e.deleteCmd(),
		e.editCmd(), e.applyCmd(), e.waitCmd(), e.moveCmd(), e.eventsCmd(), e.auditCmd(), e.versionCmd(), e.traceCmd())
	for _, c := range root.Commands() {
		wrapArgs(c)
	}
	return root
}

// wrapArgs makes cobra's argument checks usage errors (exit 2).
func wrapArgs(c *cobra.Command) {
	if c.Args != nil {
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usageErr{err}
			}
			return nil
		}
	}
}

// usageErr is a command line syctl cannot run (exit 2).
type usageErr struct{ err error }

func (u usageErr) Error() string { return u.err.Error() }
func (u usageErr) Unwrap() error { return u.err }

func usagef(format string, a ...any) error { return usageErr{fmt.Errorf(format, a...)} }

// notFoundErr is an object syctl looked for and did not find (exit 3).
type notFoundErr struct{ what string }

func (n notFoundErr) Error() string { return n.what + " not found" }

// exitCode maps an error to syctl's exit codes.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var u usageErr
	var nf notFoundErr
	switch {
	case errors.As(err, &u):
		return exitUsage
	case errors.As(err, &nf):
		return exitNotFound
	case strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "unknown flag"):
		return exitUsage
	}
	switch client.StatusOf(err) {
	case 404:
		return exitNotFound
	case 409, 412:
		return exitConflict
	}
	return exitError
}

// errorLine renders err on one line: a problem+json answer as its title,
// detail and field with the HTTP status.
func errorLine(err error) string {
	var ce *client.Error
	if !errors.As(err, &ce) {
		return oneLine(err.Error())
	}
	p := ce.Problem
	if p.Title == "" && p.Detail == "" {
		body := ce.Body
		if body == "" {
			body = "no body"
		}
		return fmt.Sprintf("HTTP %d: %s", ce.Status, oneLine(body))
	}
	msg := strings.ToLower(p.Title)
	if p.Detail != "" {
		msg += ": " + p.Detail
	}
	var extra []string
	if p.Field != "" {
		extra = append(extra, "field "+p.Field)
	}
	// A realization wait that failed (502, 504) names the hosts behind;
	// the write itself is committed.
	var ext struct {
		Hosts []string `json:"hosts"`
	}
	if json.Unmarshal([]byte(ce.Body), &ext) == nil && len(ext.Hosts) > 0 {
		extra = append(extra, "hosts "+strings.Join(ext.Hosts, ","))
		if ce.Status == 502 || ce.Status == 504 {
			extra = append(extra, "the change is committed")
		}
	}
	extra = append(extra, fmt.Sprintf("HTTP %d", ce.Status))
	prefix := ""
	if i := strings.Index(err.Error(), ": status "); i > 0 {
		prefix = err.Error()[:i] + ": "
	}
	return prefix + oneLine(msg) + " (" + strings.Join(extra, ", ") + ")"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
