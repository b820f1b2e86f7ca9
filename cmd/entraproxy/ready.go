package main

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/entraproxy/entraproxy/tokens"
)

// readiness is what /readyz reports: ready (nil) only while source holds a
// valid token and the proxy is not draining; otherwise the reason, for the
// orchestrator and for whoever reads its events.
func readiness(source *tokens.Source, draining *atomic.Bool) func() error {
	return func() error {
		if draining.Load() {
			return errors.New("draining: shutting down")
		}
		st := source.State()
		switch {
		case st.Valid:
			return nil
		case st.LastError != nil:
			return fmt.Errorf("token_unavailable: %v", st.LastError)
		default:
			return errors.New("starting: no token yet")
		}
	}
}
