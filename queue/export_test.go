package queue

// SetSegmentMax sets the size at which run log segments rotate, and
// returns the function that puts it back.
func SetSegmentMax(n int64) func() {
	old := segmentMax
	segmentMax = n
	return func() { segmentMax = old }
}
