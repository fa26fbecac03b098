package verify

import "strings"

// Closest returns the preset name nearest to name (case-insensitive, at
// most two edits away, and fewer than half its letters), or "" if none is
// near: for "did you mean" in errors.
func Closest(name string) string {
	name = strings.ToLower(name)
	best, bestDist := "", 3
	for _, p := range Presets() {
		d := editDistance(name, p)
		if d < bestDist && 2*d < len(p) {
			best, bestDist = p, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of two short ASCII names.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
