package proxy

import "sync"

// copyBufferSize is the size of the buffers ReverseProxy copies bodies
// through: httputil's own default.
const copyBufferSize = 32 << 10

// copyBuffers lends ReverseProxy its copy buffers (httputil.BufferPool).
// Without it every request allocates 32 KiB, which was 60% of the bytes
// allocated per proxied request and most of the garbage collector's work
// (BENCHMARKS.md, Profiling).
type copyBuffers struct{ pool sync.Pool }

func (b *copyBuffers) Get() []byte {
	if p, ok := b.pool.Get().(*[copyBufferSize]byte); ok {
		return p[:]
	}
	return new([copyBufferSize]byte)[:]
}

// Put keeps buf for reuse. Storing a pointer to the array, not the slice,
// keeps Put itself free of allocations.
func (b *copyBuffers) Put(buf []byte) {
	if len(buf) == copyBufferSize {
		b.pool.Put((*[copyBufferSize]byte)(buf))
	}
}
