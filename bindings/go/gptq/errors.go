package gptq

import (
	"fmt"
	"strings"
)

// Error is a failure reported by libgptq (or found by this package before
// calling it). Status says what kind of failure it is; Message is the
// library's detailed message, e.g. "gptq_add_batch: x has 511 columns but
// the layer has in_features 512", or, for checks made in Go, a message that
// starts with the Go method's name ("gptq.Context.AddBatch: ...").
type Error struct {
	Status  Status
	Message string
}

// Error returns the status name and the message,
// "GPTQ_ERR_SIZE_MISMATCH: gptq_add_batch: x has 511 columns ...".
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Status.Error()
	}
	return e.Status.String() + ": " + e.Message
}

// Is reports whether target names the same kind of failure: a Status equal
// to e.Status (errors.Is(err, gptq.ErrInvalidState)), or an *Error with the
// same Status and either the same Message or none.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case Status:
		return t == e.Status
	case *Error:
		return t != nil && t.Status == e.Status && (t.Message == "" || t.Message == e.Message)
	}
	return false
}

// Unwrap returns the Status, so that errors.As(err, &status) works too.
func (e *Error) Unwrap() error { return e.Status }

// Error makes every Status usable as an error and as an errors.Is target.
// It returns the library's description,
// "GPTQ_ERR_INVALID_STATE: call not valid in the object's current state".
func (s Status) Error() string { return c_gptq_status_string(s) }

// String returns the C name of the status, "GPTQ_ERR_INVALID_STATE" ("OK"
// is "GPTQ_OK"), or "Status(N)" for a value this library does not know.
func (s Status) String() string {
	full := c_gptq_status_string(s)
	if i := strings.IndexByte(full, ':'); i > 0 {
		return full[:i]
	}
	return fmt.Sprintf("Status(%d)", int32(s))
}

// statusError turns a low-level wrapper's (Status, message) into an error:
// nil for OK.
func statusError(s Status, msg string) error {
	if s == OK {
		return nil
	}
	return &Error{Status: s, Message: msg}
}

// goError is a failure found in Go before any native call.
func goError(s Status, where, format string, args ...interface{}) error {
	return &Error{Status: s, Message: where + ": " + fmt.Sprintf(format, args...)}
}

// CallbackPanic is the value a method panics with when a Progress or Log
// callback panicked while the library was running it. The panic was
// recovered inside the callback (it never unwound through native frames),
// the native call was allowed to finish and clean up, and then re-raised
// on the calling goroutine as this value.
type CallbackPanic struct {
	Callback string      // "progress" or "log"
	Value    interface{} // what the callback panicked with
	Stack    []byte      // the callback's stack at the panic
}

func (p *CallbackPanic) Error() string {
	return fmt.Sprintf("gptq: the %s callback panicked: %v\n\n%s", p.Callback, p.Value, p.Stack)
}

// Unwrap returns Value if it is an error.
func (p *CallbackPanic) Unwrap() error {
	if err, ok := p.Value.(error); ok {
		return err
	}
	return nil
}
