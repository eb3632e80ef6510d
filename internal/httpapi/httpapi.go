// Package httpapi holds the JSON conventions every livecell HTTP API shares:
// strict, size-limited request decoding and error bodies that carry a stable
// apierr code. Malformed input is always the caller's 4xx, never a 500.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/livecell/livecell/internal/apierr"
)

// DefaultMaxBody bounds request bodies when a handler names no limit.
const DefaultMaxBody = 64 << 10

// ErrorBody is the JSON shape of every error response.
type ErrorBody struct {
	Code    apierr.Code `json:"code"`
	Message string      `json:"message"`
}

// Decode reads one JSON object from r's body into v. It rejects a wrong
// content type, unknown fields, trailing data and bodies over max bytes
// (0 means DefaultMaxBody), each with a coded error.
func Decode(w http.ResponseWriter, r *http.Request, v any, max int64) error {
	if max <= 0 {
		max = DefaultMaxBody
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return apierr.New(apierr.UnsupportedMedia, "content type must be application/json")
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return apierr.New(apierr.BadRequest, "request body must hold a single JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var (
		maxErr    *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &maxErr):
		return apierr.Wrap("httpapi.Decode", apierr.PayloadTooLarge, fmt.Sprintf("request body exceeds %d bytes", maxErr.Limit), err)
	case errors.Is(err, io.EOF):
		return apierr.New(apierr.BadRequest, "request body is empty")
	case errors.As(err, &syntaxErr):
		return apierr.Wrap("httpapi.Decode", apierr.BadRequest, fmt.Sprintf("malformed JSON at byte %d", syntaxErr.Offset), err)
	case errors.As(err, &typeErr):
		return apierr.Wrap("httpapi.Decode", apierr.BadRequest, fmt.Sprintf("field %q must be %s", typeErr.Field, typeErr.Type), err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return apierr.Wrap("httpapi.Decode", apierr.BadRequest, strings.TrimPrefix(err.Error(), "json: "), err)
	default:
		return apierr.Wrap("httpapi.Decode", apierr.BadRequest, "malformed JSON", err)
	}
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes err as an ErrorBody with the status of its code. Errors
// without a code are logged with their cause and shown as "internal".
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := apierr.CodeOf(err)
	if e, ok := apierr.From(err); ok && e.RetryAfter > 0 {
		secs := int(e.RetryAfter.Seconds() + 0.999)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	if log != nil {
		lvl := slog.LevelInfo
		if code.HTTPStatus() >= 500 {
			lvl = slog.LevelError
		}
		log.LogAttrs(r.Context(), lvl, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.String("code", string(code)), slog.String("error", err.Error()))
	}
	WriteJSON(w, code.HTTPStatus(), ErrorBody{Code: code, Message: apierr.MessageOf(err)})
}

// BearerToken returns the token of an "Authorization: Bearer" header.
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", apierr.New(apierr.Unauthenticated, "missing bearer token")
	}
	return strings.TrimSpace(tok), nil
}

// PlayerVerifier checks a player access token offline and returns whose it
// is and their home cell.
type PlayerVerifier interface {
	VerifyPlayer(token string) (playerID, homeCell string, err error)
}

// CellPlayer authenticates r's bearer player token for a service of cell:
// a player homed elsewhere is refused (permission_denied), their data lives
// in their own cell.
func CellPlayer(r *http.Request, v PlayerVerifier, cell string) (playerID string, err error) {
	tok, err := BearerToken(r)
	if err != nil {
		return "", err
	}
	playerID, home, err := v.VerifyPlayer(tok)
	if err != nil {
		return "", err
	}
	if home != "" && home != cell {
		return "", apierr.New(apierr.PermissionDenied, "player is homed to cell %s: use that cell", home)
	}
	return playerID, nil
}

// NotFound answers unknown routes with a coded JSON 404.
func NotFound(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusNotFound, ErrorBody{Code: apierr.NotFound, Message: "no such endpoint: " + r.Method + " " + r.URL.Path})
}
