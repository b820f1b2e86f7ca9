package tokens

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Kinds lists the ENTRAPROXY_CREDENTIAL values, in the order -h shows them.
// Each call returns a new slice, so no caller can change another's.
func Kinds() []string {
	return []string{"default", "azure-cli", "azure-developer-cli", "managed-identity", "workload-identity", "environment"}
}

// CredentialOptions configures NewCredential.
type CredentialOptions struct {
	// Getenv reads AZURE_CLIENT_ID (the user-assigned identity of the
	// managed-identity kind) and AZURE_CLIENT_ID, AZURE_TENANT_ID,
	// AZURE_FEDERATED_TOKEN_FILE (the workload-identity kind). Nil means
	// os.Getenv. azidentity itself still reads the process environment for
	// the rest (the default and environment kinds, IDENTITY_ENDPOINT,
	// AZURE_TOKEN_CREDENTIALS ...): it offers no way to pass those in.
	Getenv func(string) string

	// Transport sends the HTTP requests of the credentials that talk to
	// Entra ID or a managed identity endpoint (tests, proxy settings). Nil
	// means azcore's default transport, which honours HTTPS_PROXY and
	// NO_PROXY. The CLI credentials run a process and never use it.
	Transport policy.Transporter
}

// Named is implemented by the credentials NewCredential returns, so that a
// Source can say which credential produced each token.
type Named interface {
	// CredentialName is the azidentity type behind the latest token, such as
	// "AzureCLICredential". For the default kind it is
	// "DefaultAzureCredential" until AzureLogListener has seen which source
	// the chain authenticated with.
	CredentialName() string
}

// NewCredential builds the azidentity credential of kind, one of Kinds. The
// result implements Named.
func NewCredential(kind string, opts CredentialOptions) (azcore.TokenCredential, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	client := azcore.ClientOptions{Transport: opts.Transport}

	var (
		cred azcore.TokenCredential
		name string
		err  error
	)
	switch kind {
	case "default":
		// DefaultAzureCredential, not a chain of our own: it owns the order of
		// sources and AZURE_TOKEN_CREDENTIALS ("dev", "prod", a type name),
		// which would drift if copied here.
		name = "DefaultAzureCredential"
		cred, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: client})
	case "azure-cli":
		name = "AzureCLICredential"
		// No TenantID from AZURE_TENANT_ID: DefaultAzureCredential does not
		// give one to its CLI sources either (docs/AZIDENTITY.md, Tenants),
		// so default and azure-cli ask az for the same tenant, the one az
		// is logged in to. TestCLITenantParity keeps it so.
		cred, err = azidentity.NewAzureCLICredential(nil)
	case "azure-developer-cli":
		name = "AzureDeveloperCLICredential"
		cred, err = azidentity.NewAzureDeveloperCLICredential(nil) // no TenantID, as for azure-cli
	case "managed-identity":
		name = "ManagedIdentityCredential"
		o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: client}
		// The same rule DefaultAzureCredential applies, so switching between
		// default and managed-identity never changes the identity used.
		if id := getenv("AZURE_CLIENT_ID"); id != "" {
			o.ID = azidentity.ClientID(id)
		}
		cred, err = azidentity.NewManagedIdentityCredential(o)
	case "workload-identity":
		name = "WorkloadIdentityCredential"
		cred, err = azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: client,
			ClientID:      getenv("AZURE_CLIENT_ID"),
			TenantID:      getenv("AZURE_TENANT_ID"),
			TokenFilePath: getenv("AZURE_FEDERATED_TOKEN_FILE"),
		})
	case "environment":
		name = "EnvironmentCredential"
		cred, err = azidentity.NewEnvironmentCredential(&azidentity.EnvironmentCredentialOptions{ClientOptions: client})
	default:
		return nil, fmt.Errorf("unknown credential %q: want one of %s", kind, strings.Join(Kinds(), ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("build %s credential: %w", kind, err)
	}
	return &credential{cred: cred, name: name, chain: kind == "default"}, nil
}

// credential is an azidentity credential that knows its name.
type credential struct {
	cred azcore.TokenCredential
	// chain is true for DefaultAzureCredential, whose name is learned from
	// its log event.
	chain bool

	mu   sync.Mutex
	name string
}

func (c *credential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return c.cred.GetToken(ctx, opts)
}

func (c *credential) CredentialName() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.name
}

// chainPrefix starts the event ChainedTokenCredential writes, synchronously
// inside GetToken, when one of DefaultAzureCredential's sources first
// succeeds. The chain then uses that source for every later call (see the
// DefaultAzureCredential doc), so one event names the source for good.
const chainPrefix = "DefaultAzureCredential authenticated with "

// AzureLogListener returns a listener for azcore/log.SetListener. It writes
// azcore's and azidentity's diagnostic events to logger at debug level (azcore
// redacts headers and query values, Redact anything token-shaped), and when
// cred is the default kind from NewCredential it records the source the chain
// authenticated with, which CredentialName then reports.
//
// This is the one public signal azidentity gives about which source of
// DefaultAzureCredential produced a token; the alternatives are reading its
// private fields or rebuilding the chain (and AZURE_TOKEN_CREDENTIALS) here.
// The listener is process-global and azcore does not synchronise setting it,
// so install it once, before any credential is used. It replaces the stderr
// listener azcore installs for AZURE_SDK_GO_LOGGING=all.
func AzureLogListener(logger *slog.Logger, cred azcore.TokenCredential) func(azlog.Event, string) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c, _ := cred.(*credential)
	return func(event azlog.Event, msg string) {
		if c != nil && c.chain && event == azidentity.EventAuthentication {
			if source, ok := strings.CutPrefix(msg, chainPrefix); ok {
				c.mu.Lock()
				c.name = strings.TrimSpace(source)
				c.mu.Unlock()
			}
		}
		if logger.Enabled(context.Background(), slog.LevelDebug) {
			// Redacted as a credential's error is: an event that quotes a
			// response must not be the one way a token reaches the log.
			logger.Debug("azure sdk", "event", string(event), "message", Redact(msg))
		}
	}
}

// credentialName names cred for logs and State.
func credentialName(cred azcore.TokenCredential) string {
	if n, ok := cred.(Named); ok {
		return n.CredentialName()
	}
	// The same rule azidentity uses for its own chain messages.
	return strings.TrimPrefix(fmt.Sprintf("%T", cred), "*azidentity.")
}
