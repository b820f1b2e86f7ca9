package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/mattn/go-isatty"

	"github.com/entraproxy/entraproxy/doctor"
)

// runDoctor implements `entraproxy doctor`: the report on stdout, the exit
// code from the report (2 invalid settings, 1 a failed check, 0 otherwise).
func runDoctor(ctx context.Context, args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "write the report as JSON, for scripts")
	service := fs.String("service", string(doctor.ServiceAuto), "which probes to run: auto (openai for *.openai.azure.com, else speech), speech or openai")
	timeout := fs.Duration("timeout", doctor.DefaultProbeTimeout, "bound of each network step and auth probe")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: entraproxy doctor [--json] [--service auto|speech|openai] [--timeout %v]\n\n"+
			"Checks the settings, credential, token, upstream and auth forms the proxy would use;\n"+
			"exit 0 when all pass, 1 when a check fails, 2 for invalid settings.\n\n", doctor.DefaultProbeTimeout)
		fs.PrintDefaults()
	}
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	// koding/websocketproxy, inside the probe proxies, logs failed
	// handshakes through the standard logger; the report already says what
	// happened, in words. doctor.Run installs its own azcore listener
	// (ObserveAzureLog) over this one; restore removes it too.
	defer installGlobalLogging(slog.New(slog.DiscardHandler), nil)()

	rep, err := doctor.Run(ctx, doctor.Options{
		Getenv:          getenv,
		Environ:         environ, // the names, for the typo check
		ObserveAzureLog: true,
		Service:         doctor.Service(*service),
		ProbeTimeout:    *timeout,
	})
	if err != nil {
		return usageError{err}
	}
	if *asJSON {
		err = doctor.WriteJSON(stdout, rep)
	} else {
		err = doctor.WriteText(stdout, rep, colorTerminal(stdout, getenv))
	}
	if err != nil {
		return err
	}
	switch rep.Summary.ExitCode {
	case doctor.ExitSettings:
		return usageError{errors.New("doctor: the settings are invalid (check 1)")}
	case doctor.ExitFailed:
		return fmt.Errorf("doctor: %d of %d checks failed", rep.Summary.Failed, len(rep.Checks))
	}
	return nil
}

// colorTerminal reports whether w is a terminal that should get colour
// (https://no-color.org: NO_COLOR set to anything turns it off).
func colorTerminal(w io.Writer, getenv func(string) string) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd()) && getenv("NO_COLOR") == "" && enableColor(f)
}
