package auth_test

import (
	"fmt"

	"github.com/airlockhq/airlock/auth"
)

func ExampleCheckPassword() {
	fmt.Println(auth.CheckPassword("hunter2"))
	fmt.Println(auth.CheckPassword("correct horse battery staple"))
	// Output:
	// invalid: password must be at least 12 characters
	// <nil>
}
