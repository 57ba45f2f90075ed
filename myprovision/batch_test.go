package myprovision

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/pgprovision"
)

// DropMany ends and drops every user it is given over one connection:
// connections killed and counted per user, a user already gone reported
// Absent, a name that is not Airlock's refused without touching the
// server.
func TestDropMany(t *testing.T) {
	ctx := context.Background()
	m, p, db := setup(t)
	read := "app_read_" + strings.TrimPrefix(db, "t_")
	var users []string
	for i := 0; i < 3; i++ {
		u := UserName("dana", fmt.Sprintf("gra_many_%s_%d", db, i))
		t.Cleanup(func() { m.Exec(t, "DROP USER IF EXISTS "+account(u)) })
		pw, err := p.Create(ctx, pgprovision.Role{Name: u, Template: read})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			d, err := login(t, m, u, pw, db)
			if err != nil {
				t.Fatal(err)
			}
			d.SetMaxIdleConns(2)
			c, err := d.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.PingContext(ctx); err != nil {
				t.Fatal(err)
			}
		}
		users = append(users, u)
	}
	gone := UserName("dana", "gra_never_made_"+db)
	out, err := p.DropMany(ctx, append(users, gone, "root"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range out[:3] {
		if d.Role != users[i] || !d.Terminated || d.Absent || d.Err != nil {
			t.Errorf("user %d: %+v", i, d)
		}
	}
	if out[0].Backends != 1 {
		t.Errorf("the held connection: %d killed", out[0].Backends)
	}
	if d := out[3]; !d.Absent || d.Err != nil {
		t.Errorf("a user that was never made: %+v", d)
	}
	if d := out[4]; !errors.Is(d.Err, ErrBadName) || d.Step != "terminate" {
		t.Errorf("root: %+v", d)
	}
	names, err := p.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if contains(names, u) {
			t.Errorf("%s still there", u)
		}
	}
}

// BenchmarkReconcile10k measures what reconciliation does to 10,000 stray
// users (DropMany over one connection), made in bulk by root first.
func BenchmarkReconcile10k(b *testing.B) {
	m, p, db := setup(b)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		users := make([]string, 10000)
		for j := range users {
			users[j] = UserName("stray", fmt.Sprintf("%s_%d_%d_%d", db, time.Now().UnixNano(), i, j))
		}
		for j := 0; j < len(users); j += 500 {
			acc := make([]string, 0, 500)
			for _, u := range users[j:min(j+500, len(users))] {
				acc = append(acc, account(u))
			}
			m.Exec(b, "CREATE USER "+strings.Join(acc, ", "))
		}
		b.StartTimer()
		t0 := time.Now()
		out, err := p.DropMany(ctx, users, "", nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range out {
			if d.Err != nil || d.Absent {
				b.Fatalf("%+v", d)
			}
		}
		b.ReportMetric(time.Since(t0).Seconds(), "s/10k")
	}
	b.ReportMetric(0, "ns/op")
}
