package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

const (
	// pollInterval is how often Wait probes: fast enough that an app waiting
	// on its sidecar starts within a fraction of a second of it being ready.
	pollInterval = 200 * time.Millisecond
	// probeTimeout bounds one probe, so a listener that accepts but never
	// answers still leaves time for the next probe and a useful error.
	probeTimeout = time.Second
)

// Wait polls readyzURL, the /readyz of a running instance, until it answers
// 200 or ctx ends. It returns nil once ready; otherwise an error that says
// what the last probe saw, for example
// `not ready after 30s: 503 starting: no token yet` or
// `not ready after 30s: ... connect: connection refused`.
// A refused connection is retried: the instance may not be listening yet.
func Wait(ctx context.Context, readyzURL string) error {
	start := time.Now()
	// Its own client: never http.DefaultClient, and no proxy from
	// HTTPS_PROXY/HTTP_PROXY for what is a local or in-pod address.
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		Timeout:   probeTimeout,
		// A redirect is not "ready"; report it rather than follow it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// A malformed URL will not get better by polling: say so at once.
	if u, err := url.Parse(readyzURL); err != nil {
		return fmt.Errorf("wait for %s: %w", readyzURL, err)
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("wait for %s: want an http:// or https:// URL with a host", readyzURL)
	}

	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	last := "no answer yet"
	for {
		ready, seen, err := probe(ctx, client, readyzURL)
		switch {
		case err == nil && ready:
			return nil
		case err == nil:
			last = seen
		case ctx.Err() == nil:
			// An error caused by ctx ending says nothing about the instance;
			// keep what the previous probe saw.
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %s", time.Since(start).Truncate(10*time.Millisecond), last)
		case <-ticker.C:
		}
	}
}

// probe does one GET. ready reports a 200; otherwise seen is the status code
// and, when the body is the JSON of Handler's /readyz, its reason.
func probe(ctx context.Context, client *http.Client, url string) (ready bool, seen string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return true, "", nil
	}
	seen = fmt.Sprint(resp.StatusCode)
	var s status
	// The reason is a short phrase; 4 KiB is plenty and bounds a wrong URL
	// that answers with a large page.
	if json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&s) == nil && s.Reason != "" {
		seen += " " + s.Reason
	} else if text := http.StatusText(resp.StatusCode); text != "" {
		seen += " " + text
	}
	return false, seen, nil
}
