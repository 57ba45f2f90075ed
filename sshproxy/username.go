package sshproxy

import (
	"strings"

	"github.com/airlockhq/airlock"
)

// ParseUsername splits the SSH user name a client sends into the target
// login and the resource. Two forms are accepted:
//
//	LOGIN@RESOURCE   ssh -l ubuntu@prod-web -p 7022 gateway
//	RESOURCE         the login comes from the certificate's
//	                 airlock-login@airlock.dev extension (certLogin), or is
//	                 left empty for the Authorizer to default
//
// Logins and resource names may contain letters, digits, '.', '_' and '-'.
func ParseUsername(user, certLogin string) (login, resource string, err error) {
	login, resource, found := strings.Cut(user, "@")
	if !found {
		login, resource = certLogin, user
	}
	if !validName(resource) {
		return "", "", airlock.Errorf(airlock.EINVALID, "invalid SSH user %q: use LOGIN@RESOURCE, e.g. ssh -l ubuntu@prod-web", printable(user))
	}
	if (found || login != "") && !validName(login) {
		return "", "", airlock.Errorf(airlock.EINVALID, "invalid login in SSH user %q: use LOGIN@RESOURCE", printable(user))
	}
	return login, resource, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return s[0] != '-' && s[0] != '.'
}
