package main

import "runtime/debug"

// Set at build time with -ldflags "-X main.version=... -X main.commit=...",
// as make dist and the Dockerfile do.
var (
	version = "dev"
	commit  = "unknown"
)

// buildStamp is the version and commit the program reports (the version
// command, the entraproxy_build_info metric): the -ldflags stamp when there
// is one, else what the go command recorded in the binary
// (runtime/debug.ReadBuildInfo): the module version of
// "go install .../cmd/entraproxy@v1.2.3", or the pseudo-version and VCS
// revision of a go build in a git clone ("-dirty" when the tree had
// changes). A binary with neither, such as one from go run, reports "dev"
// and "unknown".
func buildStamp() (ver, rev string) {
	info, _ := debug.ReadBuildInfo()
	return stampFrom(version, commit, info)
}

func stampFrom(ver, rev string, info *debug.BuildInfo) (string, string) {
	if info == nil {
		return ver, rev
	}
	if ver == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		ver = info.Main.Version
	}
	if rev == "unknown" {
		var modified bool
		var vcsRev string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				vcsRev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if vcsRev != "" {
			rev = vcsRev
			if modified {
				rev += "-dirty"
			}
		}
	}
	return ver, rev
}
