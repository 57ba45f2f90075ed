package airlock_test

import (
	"fmt"

	"github.com/airlockhq/airlock"
)

func ExampleEventDetails() {
	fmt.Println(string(airlock.EventDetails("reason", "on call", "minutes", 30, "dangling")))
	// Output: {"minutes":30,"reason":"on call"}
}
