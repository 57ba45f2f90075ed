package stream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/internal/jsonenc"
)

// encoder appends the JSON form of e to dst.
type encoder func(dst []byte, e *airlock.Event) ([]byte, error)

func encoderFor(format string) encoder {
	if format == FormatOCSF {
		return encodeOCSF
	}
	return encodeAirlock
}

// encodeAirlock is the event exactly as the audit log and its export
// carry it (seq, hash and prev_hash included, so a receiver can check the
// chain): the members json.Marshal writes for an airlock.Event, in its
// order, except that details are the stored bytes the hash covers
// (compacted, which they are already) where json.Marshal would escape
// <, > and &. Written without reflection: json.Marshal was most of a
// stream's CPU.
func encodeAirlock(dst []byte, e *airlock.Event) ([]byte, error) {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendInt(dst, e.Seq, 10)
	dst = append(dst, `,"time":"`...)
	dst = e.Time.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","actor":{"id":`...)
	dst = jsonenc.AppendString(dst, e.Actor.ID)
	dst = append(dst, `,"name":`...)
	dst = jsonenc.AppendString(dst, e.Actor.Name)
	dst = append(dst, `},"action":`...)
	dst = jsonenc.AppendString(dst, e.Action)
	for _, f := range [...]struct{ k, v string }{{`,"resource":`, e.Resource}, {`,"request_id":`, e.RequestID},
		{`,"grant_id":`, e.GrantID}, {`,"session_id":`, e.SessionID}, {`,"source_addr":`, e.SourceAddr}} {
		if f.v != "" {
			dst = append(dst, f.k...)
			dst = jsonenc.AppendString(dst, f.v)
		}
	}
	dst = append(dst, `,"outcome":`...)
	dst = jsonenc.AppendString(dst, e.Outcome)
	if len(e.Details) > 0 {
		// Compacted (a no-op on what Append stored): an edited store cannot
		// slip a newline into a JSON Lines file or invalid JSON anywhere.
		dst = append(dst, `,"details":`...)
		buf := bytes.NewBuffer(dst)
		if err := json.Compact(buf, e.Details); err != nil {
			return dst, fmt.Errorf("audit event %d: details are not JSON: %w", e.Seq, err)
		}
		dst = buf.Bytes()
	}
	dst = append(dst, `,"prev_hash":`...)
	dst = jsonenc.AppendString(dst, e.PrevHash)
	dst = append(dst, `,"hash":`...)
	dst = jsonenc.AppendString(dst, e.Hash)
	return append(dst, '}'), nil
}

// OCSF classes the events map to.
const (
	OCSFAccountChange  = 3001
	OCSFAuthentication = 3002
	OCSFAPIActivity    = 6003
)

// OCSFVersion is the OCSF schema version the mapping follows.
const OCSFVersion = "1.1.0"

// OCSFClass returns the OCSF class_uid and activity_id of an action:
// Authentication (3002) for login.* and mfa.*, Account Change (3001) for
// user.* and role.*, API Activity (6003) for the rest. docs/audit.md
// ("Streams") has the table.
func OCSFClass(action string) (class, activity int) {
	prefix, verb, _ := strings.Cut(action, ".")
	switch prefix {
	case "login":
		switch verb {
		case "logout":
			return OCSFAuthentication, 2 // Logoff
		case "succeeded", "sso", "web_approved", "failed", "refused", "throttled":
			return OCSFAuthentication, 1 // Logon (status tells success or failure)
		}
		return OCSFAuthentication, 99
	case "mfa":
		return OCSFAuthentication, 99 // Other: a second-factor step
	case "user", "role":
		switch verb {
		case "created", "bootstrap":
			return OCSFAccountChange, 1 // Create
		case "enabled":
			return OCSFAccountChange, 2 // Enable
		case "disabled":
			return OCSFAccountChange, 5 // Disable
		case "deleted":
			return OCSFAccountChange, 6 // Delete
		}
		return OCSFAccountChange, 99
	}
	last := verb
	if i := strings.LastIndexByte(verb, '.'); i >= 0 {
		last = verb[i+1:]
	}
	switch {
	case last == "created" || last == "added" || last == "applied" || strings.HasSuffix(last, "issued") || last == "generated":
		return OCSFAPIActivity, 1 // Create
	case last == "read" || last == "query":
		return OCSFAPIActivity, 2 // Read
	case last == "removed" || last == "deleted":
		return OCSFAPIActivity, 4 // Delete
	case last == "reviewed" || last == "acknowledged" || last == "activated" || last == "expired" ||
		last == "revoked" || last == "ended" || last == "killed" || last == "updated":
		return OCSFAPIActivity, 3 // Update
	}
	return OCSFAPIActivity, 99
}

type ocsfUser struct {
	UID  string `json:"uid,omitempty"`
	Name string `json:"name,omitempty"`
}

type ocsfEvent struct {
	ClassUID     int            `json:"class_uid"`
	ClassName    string         `json:"class_name"`
	CategoryUID  int            `json:"category_uid"`
	CategoryName string         `json:"category_name"`
	ActivityID   int            `json:"activity_id"`
	TypeUID      int            `json:"type_uid"`
	Time         int64          `json:"time"` // ms since the epoch
	SeverityID   int            `json:"severity_id"`
	StatusID     int            `json:"status_id"`
	Status       string         `json:"status"`
	Message      string         `json:"message"`
	Metadata     ocsfMetadata   `json:"metadata"`
	Actor        ocsfActor      `json:"actor"`
	User         *ocsfUser      `json:"user,omitempty"` // 3002, 3001: the account
	API          *ocsfAPI       `json:"api,omitempty"`  // 6003
	SrcEndpoint  *ocsfEndpoint  `json:"src_endpoint,omitempty"`
	Unmapped     ocsfUnmapped   `json:"unmapped"`
	Resources    []ocsfResource `json:"resources,omitempty"`
	TimeDT       string         `json:"time_dt"`
	ActivityName string         `json:"activity_name,omitempty"`
}

type ocsfMetadata struct {
	Version   string      `json:"version"`
	Product   ocsfProduct `json:"product"`
	UID       string      `json:"uid"`
	Sequence  int64       `json:"sequence"`
	EventCode string      `json:"event_code"`
	LogName   string      `json:"log_name"`
}

type ocsfProduct struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
}

type ocsfActor struct {
	User ocsfUser `json:"user"`
}

type ocsfAPI struct {
	Operation string `json:"operation"`
}

type ocsfEndpoint struct {
	IP   string `json:"ip,omitempty"`
	Port int    `json:"port,omitempty"`
}

type ocsfResource struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type ocsfUnmapped struct {
	Resource  string          `json:"resource,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
	GrantID   string          `json:"grant_id,omitempty"`
	SessionID string          `json:"session_id,omitempty"`
	Outcome   string          `json:"outcome"`
	Details   json.RawMessage `json:"details,omitempty"`
	Hash      string          `json:"hash"`
	PrevHash  string          `json:"prev_hash"`
}

var ocsfNames = map[int][3]string{
	OCSFAccountChange:  {"Account Change", "Identity & Access Management", "3"},
	OCSFAuthentication: {"Authentication", "Identity & Access Management", "3"},
	OCSFAPIActivity:    {"API Activity", "Application Activity", "6"},
}

var activityNames = map[[2]int]string{
	{OCSFAuthentication, 1}: "Logon", {OCSFAuthentication, 2}: "Logoff",
	{OCSFAccountChange, 1}: "Create", {OCSFAccountChange, 2}: "Enable", {OCSFAccountChange, 5}: "Disable", {OCSFAccountChange, 6}: "Delete",
	{OCSFAPIActivity, 1}: "Create", {OCSFAPIActivity, 2}: "Read", {OCSFAPIActivity, 3}: "Update", {OCSFAPIActivity, 4}: "Delete",
}

// OCSF maps e to its OCSF 1.1 form (see OCSFClass). Fields OCSF has no
// place for (grant, request, session, outcome, details, the hash chain)
// are kept under unmapped, so nothing of the event is lost.
func OCSF(e *airlock.Event) ([]byte, error) { return encodeOCSF(nil, e) }

func encodeOCSF(dst []byte, e *airlock.Event) ([]byte, error) {
	class, act := OCSFClass(e.Action)
	names := ocsfNames[class]
	cat, _ := strconv.Atoi(names[2])
	o := ocsfEvent{
		ClassUID: class, ClassName: names[0], CategoryUID: cat, CategoryName: names[1],
		ActivityID: act, TypeUID: class*100 + act, ActivityName: activityNames[[2]int{class, act}],
		Time: e.Time.UnixMilli(), TimeDT: e.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		SeverityID: 1, StatusID: 1, Status: "Success", Message: e.Action,
		Metadata: ocsfMetadata{Version: OCSFVersion, Product: ocsfProduct{Name: "Airlock", VendorName: "Airlock"},
			UID: strconv.FormatInt(e.Seq, 10), Sequence: e.Seq, EventCode: e.Action, LogName: "audit"},
		Actor: ocsfActor{User: ocsfUser{UID: e.Actor.ID, Name: e.Actor.Name}},
		Unmapped: ocsfUnmapped{Resource: e.Resource, RequestID: e.RequestID, GrantID: e.GrantID, SessionID: e.SessionID,
			Outcome: e.Outcome, Details: e.Details, Hash: e.Hash, PrevHash: e.PrevHash},
	}
	if act == 99 {
		o.ActivityName = "Other"
	}
	switch e.Outcome {
	case airlock.OutcomeSuccess:
	case airlock.OutcomeDenied:
		o.StatusID, o.Status, o.SeverityID = 2, "Failure", 3 // Medium: a refused door
	default:
		o.StatusID, o.Status, o.SeverityID = 2, "Failure", 2 // Low
	}
	switch class {
	case OCSFAuthentication, OCSFAccountChange:
		o.User = &ocsfUser{UID: e.Actor.ID, Name: e.Actor.Name}
	case OCSFAPIActivity:
		o.API = &ocsfAPI{Operation: e.Action}
	}
	if e.SourceAddr != "" {
		ep := &ocsfEndpoint{IP: e.SourceAddr}
		if host, port, err := net.SplitHostPort(e.SourceAddr); err == nil {
			ep.IP = host
			ep.Port, _ = strconv.Atoi(port)
		}
		o.SrcEndpoint = ep
	}
	if e.Resource != "" {
		o.Resources = []ocsfResource{{Name: e.Resource, Type: "airlock.resource"}}
	}
	b, err := json.Marshal(&o)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}
