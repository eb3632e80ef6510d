//go:build !unix

package world

import (
	"errors"
	"os/exec"
)

// The multi-process world signals process groups, which only Unix has.
var errUnsupported = errors.New("world: the multi-process world needs a Unix system")

func detach(*exec.Cmd) {}

// Alive always reports false here: no world can run.
func Alive(Process) bool { return false }

func startTicks(int) uint64 { return 0 }

func killChild(Process) error { return errUnsupported }

// Kill is unsupported on this system.
func Kill(Process) error { return errUnsupported }

// Terminate is unsupported on this system.
func Terminate(Process) error { return errUnsupported }
