package secrets_test

import (
	"encoding/json"
	"fmt"

	"github.com/airlockhq/airlock/secrets"
)

func ExampleSecret() {
	type upstream struct {
		User     string         `json:"user"`
		Password secrets.Secret `json:"password"`
	}
	u := upstream{User: "app", Password: "s3cret"}
	j, _ := json.Marshal(u)
	fmt.Printf("%v\n%s\n%s\n", u, j, u.Password.Reveal())
	// Output:
	// {app [redacted]}
	// {"user":"app","password":"[redacted]"}
	// s3cret
}

func ExampleKeyring() {
	master, _ := secrets.GenerateKey()
	k, _ := secrets.NewKeyring("2025-01", map[string][]byte{"2025-01": master})
	blob, _ := k.Seal([]byte("pg-password"), []byte("resource:prod-db:read"))
	plain, _ := k.Open(blob, []byte("resource:prod-db:read"))
	_, err := k.Open(blob, []byte("resource:prod-db:write"))
	fmt.Println(string(plain))
	fmt.Println(err)
	// Output:
	// pg-password
	// secrets: cannot decrypt: wrong key, wrong context or tampered blob
}
