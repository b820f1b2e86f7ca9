package main

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

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
		case !st.ExpiresOn.IsZero():
			// The last call succeeded, but its token is too close to expiry
			// to hand out and the refresh is still running (a slow or stuck
			// credential).
			return fmt.Errorf("token_unavailable: the token expires at %s and its refresh has not finished", st.ExpiresOn.UTC().Format(time.RFC3339))
		default:
			return errors.New("starting: no token yet")
		}
	}
}
