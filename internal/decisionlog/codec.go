package decisionlog

import (
	"github.com/klauspost/compress/s2"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/snappy"
)

// fastSnappy is the SNAPPY codec with the fastest Snappy-compatible encoder
// of klauspost/compress (s2.EncodeSnappy) instead of the "better" one
// parquet-go's codec uses (s2.EncodeSnappyBetter). Readers see standard
// Snappy pages. The log's pages are mostly ids and scores, which neither
// mode compresses much, but the better mode spent half of the writer's CPU
// trying: measured on a node under load, compression was the largest cost
// of writing a decision.
type fastSnappy struct{ snappy.Codec }

var _ compress.Codec = (*fastSnappy)(nil)

// Encode compresses src into dst (reused when large enough).
func (*fastSnappy) Encode(dst, src []byte) ([]byte, error) {
	return s2.EncodeSnappy(dst[:cap(dst)], src), nil
}
