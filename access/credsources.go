package access

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/airlockhq/airlock"
)

// maxSecretFile bounds a secret file read through CredentialSources.
const maxSecretFile = 64 << 10

// CredentialSources are where the server resolves the secret references a
// policy names (password_env, password_file, sslrootcert; notify channels'
// url_env/url_file/secret_env/secret_file): only environment variables
// whose names start with EnvPrefix, and only files inside Dir. Whoever may
// apply policy can otherwise make the server read its own secrets (the
// master key in the data dir, the OIDC client secret) and send them to an
// upstream of their choosing. The zero value refuses every reference.
// References given to `airlock admin resources add` are resolved by the
// CLI, in the admin's own shell, and never reach these.
type CredentialSources struct {
	// Dir is the credentials directory; "" refuses file references.
	// References are relative to it, or absolute paths inside it; none may
	// leave it, by "..", or by a symbolic link (os.Root).
	Dir string
	// EnvPrefix is the prefix of the environment variables references may
	// name; "" refuses environment references.
	EnvPrefix string
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
}

// Env returns environment variable name, if the prefix allows it.
func (c CredentialSources) Env(name string) (string, error) {
	if c.EnvPrefix == "" {
		return "", airlock.Errorf(airlock.EINVALID, "environment references are off on this server (start it with --credentials-env-prefix)")
	}
	if !strings.HasPrefix(name, c.EnvPrefix) || len(name) == len(c.EnvPrefix) {
		return "", airlock.Errorf(airlock.EINVALID, "environment variable %s is not one the server resolves: names must start with %s (--credentials-env-prefix)", name, c.EnvPrefix)
	}
	getenv := c.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	v := getenv(name)
	if v == "" {
		return "", airlock.Errorf(airlock.EINVALID, "environment variable %s is not set on the server", name)
	}
	return v, nil
}

// File returns the contents of file name inside Dir.
func (c CredentialSources) File(name string) ([]byte, error) {
	if c.Dir == "" {
		return nil, airlock.Errorf(airlock.EINVALID, "file references are off on this server (start it with --credentials-dir DIR)")
	}
	outside := airlock.Errorf(airlock.EINVALID, "%s is outside the server's credentials directory %s (--credentials-dir); name a file inside it", name, c.Dir)
	rel := name
	if filepath.IsAbs(name) {
		dir, err := filepath.Abs(c.Dir)
		if err != nil {
			return nil, outside
		}
		if rel, err = filepath.Rel(dir, filepath.Clean(name)); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return nil, outside
		}
	}
	root, err := os.OpenRoot(c.Dir)
	if err != nil {
		return nil, airlock.Errorf(airlock.EINVALID, "cannot open the server's credentials directory %s", c.Dir)
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") {
			return nil, outside
		}
		return nil, airlock.Errorf(airlock.EINVALID, "cannot read %s in the server's credentials directory", name)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, airlock.Errorf(airlock.EINVALID, "%s in the server's credentials directory is not a regular file", name)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil || len(b) > maxSecretFile {
		return nil, airlock.Errorf(airlock.EINVALID, "cannot read %s in the server's credentials directory (at most %d bytes)", name, maxSecretFile)
	}
	return b, nil
}

// Resolve returns the secret a reference "env:NAME" or "file:PATH" names,
// trailing whitespace removed (notify.ResolveSecret's contract).
func (c CredentialSources) Resolve(ref string) (string, error) {
	kind, name, _ := strings.Cut(ref, ":")
	var v string
	switch kind {
	case "env":
		s, err := c.Env(name)
		if err != nil {
			return "", err
		}
		v = s
	case "file":
		b, err := c.File(name)
		if err != nil {
			return "", err
		}
		v = string(b)
	default:
		return "", fmt.Errorf("secret reference %q: want env:NAME or file:PATH", kind)
	}
	v = strings.TrimRight(v, " \t\r\n")
	if v == "" {
		return "", fmt.Errorf("secret %s is empty or unset", ref)
	}
	return v, nil
}
