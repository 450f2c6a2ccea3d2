package api

// IgnoredOnInput are the read-only properties an update may send with any
// value (contract.go), for the tests of package api_test.
var IgnoredOnInput = ignoredOnInput
