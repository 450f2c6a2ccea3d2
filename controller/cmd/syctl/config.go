package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	yaml "go.yaml.in/yaml/v3"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
)

// config is the file 'syctl login' writes.
type config struct {
	Server string `yaml:"server"`
	Token  string `yaml:"token"`
	// CA is the PEM file of the CA that signs an https:// server's
	// certificate (empty: the system's roots).
	CA string `yaml:"ca,omitempty"`
}

const defaultServer = "http://127.0.0.1:8080"

// configFile is where the config lives: --config, SWITCHYARD_CONFIG, else
// $XDG_CONFIG_HOME/switchyard/config.yaml (~/.config/...).
func (e *env) configFile() string {
	if e.configPath != "" {
		return e.configPath
	}
	if p := e.getenv("SWITCHYARD_CONFIG"); p != "" {
		return p
	}
	dir := e.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		dir = filepath.Join(e.getenv("HOME"), ".config")
	}
	return filepath.Join(dir, "switchyard", "config.yaml")
}

func (e *env) readConfig() (config, error) {
	var c config
	data, err := os.ReadFile(e.configFile())
	if os.IsNotExist(err) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("config %s: %w", e.configFile(), err)
	}
	return c, nil
}

// normalizeServer takes the URL as run.sh prints it (…/api/v1) or bare.
func normalizeServer(s string) string {
	s = strings.TrimRight(s, "/")
	return strings.TrimSuffix(s, "/api/v1")
}

// client builds the API client: flags, then environment, then config file.
func (e *env) client() (*client.Client, error) {
	cfg, err := e.readConfig()
	if err != nil {
		return nil, err
	}
	server := firstOf(e.server, e.getenv("SWITCHYARD_URL"), cfg.Server, defaultServer)
	token := firstOf(e.token, e.getenv("SWITCHYARD_TOKEN"), cfg.Token)
	if token == "" {
		return nil, usagef("no token: pass --token, set SWITCHYARD_TOKEN or run 'syctl login'")
	}
	sec, err := client.SecurityFromEnv(e.getenv)
	if err != nil {
		return nil, usageErr{err}
	}
	sec.CAFile = firstOf(e.ca, sec.CAFile, cfg.CA)
	c, err := client.NewSecure(normalizeServer(server), token, sec)
	if err != nil {
		return nil, usageErr{err}
	}
	if e.ca = sec.CAFile; e.ca != "" { // what login saves, from any directory
		if abs, err := filepath.Abs(e.ca); err == nil {
			e.ca = abs
		}
	}
	return c, nil
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func (e *env) loginCmd() *cobra.Command {
	var tokenStdin bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Check a server and token and save them in the config file (mode 0600)",
		Example: "  syctl login --server http://127.0.0.1:8080 --token $TOKEN\n" +
			"  echo $TOKEN | syctl login --server http://127.0.0.1:8080 --token-stdin",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tokenStdin {
				line, err := bufio.NewReader(e.stdin).ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("read token from stdin: %w", err)
				}
				e.token = strings.TrimSpace(line)
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			var rev struct {
				Revision int64 `json:"revision"`
			}
			if _, err := c.Do(e.ctx, "GET", "/api/v1/revision", nil, &rev); err != nil {
				return fmt.Errorf("login to %s: %w", c.Base, err)
			}
			path := e.configFile()
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return err
			}
			data, err := yaml.Marshal(config{Server: c.Base, Token: c.Token, CA: e.ca})
			if err != nil {
				return err
			}
			if err := writePrivate(path, data); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Logged in to %s (revision %d); saved in %s\n", c.Base, rev.Revision, path)
			return nil
		},
	}
	cmd.Flags().BoolVar(&tokenStdin, "token-stdin", false, "read the token from the first line of stdin")
	return cmd
}

// writePrivate writes a file only its owner may read, also when it existed
// with wider permissions.
func writePrivate(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// serverVersion is what the server tells about itself: the contract's
// version and the current revision (the API has no build version).
func serverVersion(e *env, c *client.Client) (string, int64, error) {
	var rev struct {
		Revision int64 `json:"revision"`
	}
	if _, err := c.Do(e.ctx, "GET", "/api/v1/revision", nil, &rev); err != nil {
		return "", 0, err
	}
	api := "unknown"
	if doc, err := fetchSpec(e, c); err == nil {
		api = doc
	}
	return api, rev.Revision, nil
}

// fetchSpec reads info.version of the server's /openapi.yaml.
func fetchSpec(e *env, c *client.Client) (string, error) {
	req, err := newRequest(e.ctx, c, "GET", "/openapi.yaml")
	if err != nil {
		return "", err
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var doc struct {
		Info struct {
			Version string `yaml:"version"`
		} `yaml:"info"`
	}
	if err := yaml.NewDecoder(res.Body).Decode(&doc); err != nil {
		return "", err
	}
	return doc.Info.Version, nil
}

func (e *env) versionCmd() *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client's and the server's versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			local, _ := loadSpecVersion()
			fmt.Fprintf(e.stdout, "Client: syctl %s (API %s)\n", clientVersion(), local)
			if clientOnly {
				return nil
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			api, rev, err := serverVersion(e, c)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Server: %s (API %s, revision %d)\n", c.Base, api, rev)
			return nil
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "only the client's version")
	return cmd
}

// clientVersion is version, with the commit the binary was built from
// when no version was set at link time.
func clientVersion() string {
	info, ok := debug.ReadBuildInfo()
	if version != "dev" || !ok {
		return version
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ", modified"
			}
		}
	}
	if rev == "" {
		return version
	}
	return fmt.Sprintf("%s (commit %.12s%s)", version, rev, dirty)
}

// loadSpecVersion is the version of the contract syctl was built with.
func loadSpecVersion() (string, error) {
	var doc struct {
		Info struct {
			Version string `yaml:"version"`
		} `yaml:"info"`
	}
	err := yaml.Unmarshal(openapi.SpecYAML, &doc)
	return doc.Info.Version, err
}
