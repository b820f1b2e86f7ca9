package fakeazure

import (
	"encoding/binary"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Output formats: the names of
// https://learn.microsoft.com/azure/ai-services/speech-service/rest-text-to-speech#audio-outputs
// that the fake makes. Every format carries the same audio, 50 ms per
// character of text (MillisecondsPerCharacter):
//
//   - raw-{8khz,16khz,22050hz,24khz,44100hz,48khz}-16bit-mono-pcm: a 440 Hz
//     tone at that rate, 16-bit little endian; riff-* the same after a
//     44-byte WAV header. The native Speech SDK asks for raw-* and writes the
//     header itself; the JavaScript SDK does the same on Node.
//   - audio-{16,24,48}khz-{N}kbitrate-mono-mp3: silent MPEG Layer III frames
//     (MPEG-2 at 16 and 24 kHz, MPEG-1 at 48 kHz), as many as cover the
//     duration; what the Speech SDKs ask for when the app wants MP3.
type outputFormat struct {
	rate    int  // samples per second
	riff    bool // a WAV header first
	mp3     bool
	kbps    int // mp3 only
	mpeg1   bool
	bitrate byte // the frame header's bitrate index
	srIndex byte // the frame header's sample rate index
}

var (
	pcmFormat = regexp.MustCompile(`^(raw|riff)-(8khz|16khz|22050hz|24khz|44100hz|48khz)-16bit-mono-pcm$`)
	mp3Format = regexp.MustCompile(`^audio-(16|24|48)khz-(\d+)kbitrate-mono-mp3$`)
)

// parseFormat reads a format name, in any letter case.
func parseFormat(name string) (outputFormat, bool) {
	name = strings.ToLower(name)
	if m := pcmFormat.FindStringSubmatch(name); m != nil {
		rate := map[string]int{"8khz": 8000, "16khz": 16000, "22050hz": 22050, "24khz": 24000, "44100hz": 44100, "48khz": 48000}[m[2]]
		return outputFormat{rate: rate, riff: m[1] == "riff"}, true
	}
	if m := mp3Format.FindStringSubmatch(name); m != nil {
		khz, _ := strconv.Atoi(m[1])
		kbps, _ := strconv.Atoi(m[2])
		f := outputFormat{rate: khz * 1000, mp3: true, kbps: kbps, mpeg1: khz == 48}
		// ISO/IEC 11172-3 and 13818-3 Layer III tables.
		bitrates := []int{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160}
		f.srIndex = map[int]byte{16: 2, 24: 1, 48: 1}[khz]
		if f.mpeg1 {
			bitrates = []int{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320}
		}
		for i, b := range bitrates {
			if b == kbps && i > 0 {
				f.bitrate = byte(i)
				return f, true
			}
		}
	}
	return outputFormat{}, false
}

// contentType is the REST answer's Content-Type.
func (f outputFormat) contentType() string {
	switch {
	case f.mp3:
		return "audio/mpeg"
	case f.riff:
		return "audio/wav"
	}
	return "application/octet-stream"
}

// FormatBytes is how many bytes the fake synthesizes for text in format,
// or false for a format it does not make.
func FormatBytes(format, text string) (int, bool) {
	f, ok := parseFormat(format)
	if !ok {
		return 0, false
	}
	return len(f.audio(text)), true
}

// audio is text's audio in f.
func (f outputFormat) audio(text string) []byte {
	ms := MillisecondsPerCharacter * utf8Len(text)
	samples := f.rate * ms / 1000
	if f.mp3 {
		perFrame := 576
		if f.mpeg1 {
			perFrame = 1152
		}
		frames := (samples + perFrame - 1) / perFrame
		return silentMP3(f, frames)
	}
	pcm := toneAt(f.rate, samples)
	if f.riff {
		return append(wavHeaderAt(f.rate, len(pcm)), pcm...)
	}
	return pcm
}

// silentMP3 is n Layer III frames of silence: a frame header, zero side
// information (no bits in any granule) and zero padding to the frame size.
func silentMP3(f outputFormat, n int) []byte {
	size := 72 * f.kbps * 1000 / f.rate // MPEG-2: 576 samples a frame
	version := byte(0xF3)               // sync, MPEG-2, Layer III, no CRC
	if f.mpeg1 {
		size = 144 * f.kbps * 1000 / f.rate
		version = 0xFB
	}
	frame := make([]byte, size)
	frame[0], frame[1] = 0xFF, version
	frame[2] = f.bitrate<<4 | f.srIndex<<2
	frame[3] = 0xC0 // mono
	out := make([]byte, 0, n*size)
	for range n {
		out = append(out, frame...)
	}
	return out
}

// toneAt returns n samples of a 440 Hz sine at rate, 16-bit little endian.
func toneAt(rate, n int) []byte {
	b := make([]byte, 2*n)
	for i := range n {
		s := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/float64(rate)))
		binary.LittleEndian.PutUint16(b[2*i:], uint16(s))
	}
	return b
}

// wavHeaderAt is the 44-byte RIFF header for dataBytes of 16-bit mono PCM at rate.
func wavHeaderAt(rate, dataBytes int) []byte {
	h := make([]byte, 0, WAVHeaderBytes)
	le := binary.LittleEndian
	h = append(h, "RIFF"...)
	h = le.AppendUint32(h, uint32(36+dataBytes))
	h = append(h, "WAVEfmt "...)
	h = le.AppendUint32(h, 16)
	h = le.AppendUint16(h, 1)
	h = le.AppendUint16(h, 1)
	h = le.AppendUint32(h, uint32(rate))
	h = le.AppendUint32(h, uint32(rate*2))
	h = le.AppendUint16(h, 2)
	h = le.AppendUint16(h, 16)
	h = append(h, "data"...)
	return le.AppendUint32(h, uint32(dataBytes))
}

// unsupportedFormat is the message for a format the fake does not make.
func unsupportedFormat(name string) string {
	return fmt.Sprintf("fakeazure: unsupported output format %s; use raw- or riff-(8khz|16khz|22050hz|24khz|44100hz|48khz)-16bit-mono-pcm or audio-(16|24|48)khz-Nkbitrate-mono-mp3", name)
}
