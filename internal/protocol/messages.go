package protocol

import (
	"context"
	"encoding/json"
)

// Hello is the first frame a client sends. It carries either an access token
// from the accounts service or a resume token from a previous Welcome.
type Hello struct {
	Protocol    int    `json:"protocol"`
	Token       string `json:"token,omitempty"`
	ResumeToken string `json:"resume_token,omitempty"`
	Client      string `json:"client,omitempty"` // free-form client build, for logs
}

// Welcome answers a successful Hello.
type Welcome struct {
	SessionID     string `json:"session_id"`
	PlayerID      string `json:"player_id"`
	Cell          string `json:"cell"`
	HeartbeatMS   int64  `json:"heartbeat_ms"`    // client pings at least this often
	IdleTimeoutMS int64  `json:"idle_timeout_ms"` // silence longer than this closes the session
	MaxFrame      int    `json:"max_frame"`
	ResumeToken   string `json:"resume_token,omitempty"`
	ServerTimeMS  int64  `json:"server_time_ms"`
}

// ErrorBody is the payload of OpError.
type ErrorBody struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	Retryable    bool   `json:"retryable"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

// Reconnect tells a client to move: the gateway is draining, the cell failed
// over, or the player was rehomed.
type Reconnect struct {
	Reason       string `json:"reason"`
	Cell         string `json:"cell,omitempty"`
	Gateway      string `json:"gateway,omitempty"` // host:port; empty means resolve again
	RetryAfterMS int64  `json:"retry_after_ms"`
	ResumeToken  string `json:"resume_token,omitempty"`
}

// ResumeGrant answers OpResume: a fresh resume token for the session, so a
// session that outlives its Welcome's token can still resume (an edge
// renews the token it keeps for a player this way).
type ResumeGrant struct {
	ResumeToken string `json:"resume_token"`
}

// Push is the payload of OpPush: an event addressed to one player.
type Push struct {
	Topic string          `json:"topic"` // e.g. "inventory.updated"
	ID    string          `json:"id,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// TopicSessionMoved is the push an edge sends when it has moved a session
// to another cell (failover, drain) while the player's connection stayed
// open. Its data is SessionMoved.
const TopicSessionMoved = "session.moved"

// SessionMoved is the data of a TopicSessionMoved push.
type SessionMoved struct {
	Reason      string `json:"reason"` // failover, draining, rehome, shutting_down
	FromCell    string `json:"from_cell,omitempty"`
	Cell        string `json:"cell"`       // the cell serving the session now
	SessionID   string `json:"session_id"` // the session's id there
	ResumeToken string `json:"resume_token,omitempty"`
}

// Bye is an orderly close with a reason.
type Bye struct {
	Reason string `json:"reason"`
}

// Caller identifies the authenticated player behind a request.
type Caller struct {
	PlayerID  string
	SessionID string
	Cell      string
}

// Handler answers one request opcode for an authenticated player. It returns
// the response payload, or an error whose apierr code goes back in an error
// frame. Services export their handlers as a map so the gateway can call them
// in-process or forward them to the service's HTTP API.
type Handler func(ctx context.Context, c Caller, payload []byte) ([]byte, error)

// Handlers maps request opcodes to their handlers.
type Handlers map[Opcode]Handler
