package auth_test

import (
	"fmt"
	"time"

	"github.com/airlockhq/airlock/auth"
)

func ExampleLimiter() {
	now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	l := auth.NewLimiter(auth.LimiterConfig{}, func() time.Time { return now })
	for i := 1; i <= 5; i++ {
		locked, until := l.Fail("user:alice")
		fmt.Printf("failure %d: delay %v, locked %v %s\n", i, l.Delay("user:alice"), locked, until.Format("15:04"))
	}
	// Output:
	// failure 1: delay 0s, locked false 00:00
	// failure 2: delay 0s, locked false 00:00
	// failure 3: delay 1s, locked false 00:00
	// failure 4: delay 2s, locked false 00:00
	// failure 5: delay 0s, locked true 09:15
}

func ExampleCheckPassword() {
	fmt.Println(auth.CheckPassword("hunter2"))
	fmt.Println(auth.CheckPassword("correct horse battery staple"))
	// Output:
	// invalid: password must be at least 12 characters
	// <nil>
}
