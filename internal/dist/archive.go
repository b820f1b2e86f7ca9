package dist

import (
	"archive/tar"
	"archive/zip"
	"compress/flate"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// file is one regular file to pack.
type file struct {
	name string      // slash-separated path in the archive
	mode fs.FileMode // permission bits (fs.ModeDir added for directories)
	src  string      // path on disk; empty for a directory
}

// entries returns the files and an entry for every directory above them,
// sorted by name, so each directory comes before what it holds. The order,
// like every other header field, depends on nothing but the names: that is
// what makes two archives of the same files byte-identical.
func entries(files []file) []file {
	out := slices.Clone(files)
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.name); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			out = append(out, file{name: d + "/", mode: fs.ModeDir | 0o755})
		}
	}
	slices.SortFunc(out, func(a, b file) int { return strings.Compare(a.name, b.name) })
	return out
}

// writeTarGz writes files as a gzip-compressed tar: USTAR headers with mtime
// as every entry's time, owner 0/0 without names, and a gzip header without
// file name or time (RFC 1952 allows MTIME 0: "no time stamp is available").
func writeTarGz(w io.Writer, files []file, mtime time.Time) error {
	gz, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	for _, f := range entries(files) {
		hdr := &tar.Header{Name: f.name, Mode: int64(f.mode.Perm()), ModTime: mtime, Format: tar.FormatUSTAR}
		if f.mode.IsDir() {
			hdr.Typeflag = tar.TypeDir
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			continue
		}
		if err := copyFile(f.src, func(size int64) (io.Writer, error) {
			hdr.Typeflag, hdr.Size = tar.TypeReg, size
			return tw, tw.WriteHeader(hdr)
		}); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// writeZip writes files as a zip: deflated, each entry's time mtime in UTC
// (the MS-DOS field has no zone; the extended timestamp Go adds does), Unix
// permission bits in the external attributes.
func writeZip(w io.Writer, files []file, mtime time.Time) error {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestCompression)
	})
	for _, f := range entries(files) {
		fh := &zip.FileHeader{Name: f.name, Modified: mtime.UTC(), Method: zip.Deflate}
		fh.SetMode(f.mode)
		if f.mode.IsDir() {
			fh.Method = zip.Store
			if _, err := zw.CreateHeader(fh); err != nil {
				return err
			}
			continue
		}
		if err := copyFile(f.src, func(int64) (io.Writer, error) { return zw.CreateHeader(fh) }); err != nil {
			return err
		}
	}
	return zw.Close()
}

// copyFile copies the file at src into the writer start returns, which it
// calls with the file's size once the file is open.
func copyFile(src string, start func(size int64) (io.Writer, error)) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	w, err := start(fi.Size())
	if err != nil {
		return err
	}
	_, err = io.Copy(w, f)
	return err
}
