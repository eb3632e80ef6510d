// Package apierr defines livecell's stable error codes and the error type
// that carries them from a service to a client.
//
// A client sees only the Code and the public message; logs see the wrapped
// cause. One table maps each code to an HTTP status and to whether a client
// may retry, so HTTP handlers and gateway error frames agree.
package apierr

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Code is a stable, machine-readable error code. Codes are part of the public
// protocol (docs/protocol.md): never rename one, only add.
type Code string

// Codes shared by HTTP APIs and gateway error frames.
const (
	BadRequest          Code = "bad_request"
	Unauthenticated     Code = "unauthenticated"
	InvalidToken        Code = "invalid_token"
	TokenExpired        Code = "token_expired"
	InvalidCredentials  Code = "invalid_credentials"
	PermissionDenied    Code = "permission_denied"
	NotFound            Code = "not_found"
	UnknownPlayer       Code = "unknown_player"
	Conflict            Code = "conflict"
	RateLimited         Code = "rate_limited"
	PayloadTooLarge     Code = "payload_too_large"
	UnsupportedMedia    Code = "unsupported_media_type"
	MethodNotAllowed    Code = "method_not_allowed"
	Unavailable         Code = "unavailable"
	NoHealthyCell       Code = "no_healthy_cell"
	Timeout             Code = "timeout"
	Internal            Code = "internal"
	BadFrame            Code = "bad_frame"
	FrameTooLarge       Code = "frame_too_large"
	UnsupportedVersion  Code = "unsupported_version"
	UnsupportedEncoding Code = "unsupported_encoding"
	UnknownOpcode       Code = "unknown_opcode"
	NotAuthenticated    Code = "not_authenticated"
	AlreadyAuth         Code = "already_authenticated"
	AuthTimeout         Code = "auth_timeout"
	IdleTimeout         Code = "idle_timeout"
	SlowConsumer        Code = "slow_consumer"
	Draining            Code = "draining"
	ShuttingDown        Code = "shutting_down"
	SessionMoved        Code = "session_moved"
	PlayerMoved         Code = "player_moved"
	Quarantined         Code = "quarantined"
)

type codeInfo struct {
	status    int
	retryable bool
}

var codes = map[Code]codeInfo{
	BadRequest:          {http.StatusBadRequest, false},
	Unauthenticated:     {http.StatusUnauthorized, false},
	InvalidToken:        {http.StatusUnauthorized, false},
	TokenExpired:        {http.StatusUnauthorized, false},
	InvalidCredentials:  {http.StatusUnauthorized, false},
	PermissionDenied:    {http.StatusForbidden, false},
	NotFound:            {http.StatusNotFound, false},
	UnknownPlayer:       {http.StatusNotFound, false},
	Conflict:            {http.StatusConflict, false},
	RateLimited:         {http.StatusTooManyRequests, true},
	PayloadTooLarge:     {http.StatusRequestEntityTooLarge, false},
	UnsupportedMedia:    {http.StatusUnsupportedMediaType, false},
	MethodNotAllowed:    {http.StatusMethodNotAllowed, false},
	Unavailable:         {http.StatusServiceUnavailable, true},
	NoHealthyCell:       {http.StatusServiceUnavailable, true},
	Timeout:             {http.StatusGatewayTimeout, true},
	Internal:            {http.StatusInternalServerError, true},
	BadFrame:            {http.StatusBadRequest, false},
	FrameTooLarge:       {http.StatusRequestEntityTooLarge, false},
	UnsupportedVersion:  {http.StatusBadRequest, false},
	UnsupportedEncoding: {http.StatusBadRequest, false},
	UnknownOpcode:       {http.StatusNotFound, false},
	NotAuthenticated:    {http.StatusUnauthorized, false},
	AlreadyAuth:         {http.StatusConflict, false},
	AuthTimeout:         {http.StatusRequestTimeout, true},
	IdleTimeout:         {http.StatusRequestTimeout, true},
	SlowConsumer:        {http.StatusTooManyRequests, true},
	Draining:            {http.StatusServiceUnavailable, true},
	ShuttingDown:        {http.StatusServiceUnavailable, true},
	SessionMoved:        {http.StatusServiceUnavailable, true},
	PlayerMoved:         {http.StatusMisdirectedRequest, true},
	Quarantined:         {http.StatusForbidden, false},
}

// Codes returns every defined code; tests use it to keep docs in step.
func Codes() []Code {
	out := make([]Code, 0, len(codes))
	for c := range codes {
		out = append(out, c)
	}
	return out
}

// Known reports whether c is a defined code.
func (c Code) Known() bool { _, ok := codes[c]; return ok }

// HTTPStatus is the HTTP status a code maps to (500 for unknown codes).
func (c Code) HTTPStatus() int {
	if ci, ok := codes[c]; ok {
		return ci.status
	}
	return http.StatusInternalServerError
}

// Retryable reports whether a client may retry the same call later.
func (c Code) Retryable() bool { return codes[c].retryable }

// Error is an error with a stable code and a message safe to show a client.
type Error struct {
	Op         string        // operation that failed, for logs ("accounts.Login")
	Code       Code          // stable code for clients
	Msg        string        // public message; empty means a generic one
	Err        error         // cause, for logs only
	RetryAfter time.Duration // when non-zero, surfaced as Retry-After / retry_after_ms
}

func (e *Error) Error() string {
	s := string(e.Code)
	if e.Op != "" {
		s = e.Op + ": " + s
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error with a code and a public message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an error that carries code and msg to the client and err to the
// logs. Wrapping an *Error keeps its code unless code is non-empty.
func Wrap(op string, code Code, msg string, err error) *Error {
	return &Error{Op: op, Code: code, Msg: msg, Err: err}
}

// From finds the first *Error in err's chain.
func From(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// CodeOf returns err's code, Internal when err carries none.
func CodeOf(err error) Code {
	if e, ok := From(err); ok && e.Code != "" {
		return e.Code
	}
	return Internal
}

// MessageOf returns the message a client may see. Causes of errors without a
// code are never shown: they may hold SQL, paths or other internals.
func MessageOf(err error) string {
	if e, ok := From(err); ok && e.Code != "" {
		if e.Msg != "" {
			return e.Msg
		}
		return defaultMessage(e.Code)
	}
	return defaultMessage(Internal)
}

func defaultMessage(c Code) string {
	switch c {
	case Internal:
		return "internal error"
	case Unavailable:
		return "service unavailable, retry later"
	case RateLimited:
		return "too many requests"
	default:
		return string(c)
	}
}
