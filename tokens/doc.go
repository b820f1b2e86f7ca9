// Package tokens owns the Entra ID token: the azidentity credential that gets
// it, the one cache that refreshes it ahead of expiry, and the Authorization
// header forms that carry it upstream.
//
// What it relies on in azidentity (DefaultAzureCredential's order and
// AZURE_TOKEN_CREDENTIALS, which credentials cache, how the CLI credentials
// run and how a missing az shows, RefreshOn, the shape of the errors) is in
// docs/AZIDENTITY.md, each fact with its public source.
package tokens
