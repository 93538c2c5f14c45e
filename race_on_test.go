//go:build race

package apitokens

// raceEnabled is true when the tests run under the race detector (go test -race).
const raceEnabled = true
