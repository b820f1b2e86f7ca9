// Package buildcheck keeps the Dockerfile and deployment examples honest: it
// builds what they build and parses what they ship.
//
// It has no code of its own; its tests run the Dockerfile's go build command
// outside Docker (Docker cannot run in CI) for linux/amd64 and linux/arm64,
// and check every file under examples/ against the settings package config
// really reads.
package buildcheck
