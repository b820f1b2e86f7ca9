package tokens

import (
	"fmt"
	"regexp"
	"strings"
)

// Form is how a token is written into the upstream Authorization header.
type Form int

const (
	// Bearer is "Bearer <jwt>": what Azure OpenAI and current Speech SDKs send
	// to a custom-domain endpoint.
	Bearer Form = iota
	// AAD is Speech's "Bearer aad#<resource id>#<jwt>", documented for the
	// Speech SDK with a region and for the short-audio Speech REST APIs.
	AAD
)

func (f Form) String() string {
	if f == AAD {
		return "aad"
	}
	return "bearer"
}

// Authorization returns the Authorization header value that carries token in
// form f. resourceID is used only by AAD.
func Authorization(f Form, resourceID, token string) string {
	if f == AAD {
		return "Bearer aad#" + resourceID + "#" + token
	}
	return "Bearer " + token
}

// resourceIDPattern is the ARM id of a Cognitive Services account. Letter case
// of the fixed segments varies in the wild (portal copies use
// "resourceGroups", some CLIs "resourcegroups"), so it is matched without case.
var resourceIDPattern = regexp.MustCompile(`(?i)^/subscriptions/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/resourceGroups/[-\w._()]{1,90}/providers/Microsoft\.CognitiveServices/accounts/[a-z0-9][-a-z0-9_.]{0,63}$`)

// CheckResourceID reports whether id is the ARM id of a Cognitive Services
// account, the form the aad# header needs.
func CheckResourceID(id string) error {
	if resourceIDPattern.MatchString(id) {
		return nil
	}
	if strings.ContainsAny(id, "#\r\n ") {
		return fmt.Errorf("must not contain '#', spaces or line breaks")
	}
	return fmt.Errorf("want /subscriptions/<subscription uuid>/resourceGroups/<group>/providers/Microsoft.CognitiveServices/accounts/<account>")
}
