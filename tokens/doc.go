// Package tokens owns the Entra ID token: the azidentity credential that gets
// it, the one cache that refreshes it ahead of expiry, and the Authorization
// header forms that carry it upstream.
package tokens
