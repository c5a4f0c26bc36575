// Command render renders one webhook request of an Argo CD notification template the
// way the Argo CD notifications controller does (notifications-engine, webhook
// service): Go text/template with sprig's TxtFuncMap minus env and expandenv, default
// missing-key behaviour (a missing key prints "<no value>"), method defaulting to GET.
//
// Usage: render <configmap.yaml> <template-name> <service-name> <vars.json>
// Prints {"method": ..., "path": ..., "body": ...} as JSON on stdout.
//
// Build (Debian golang-go + golang-github-masterminds-sprig-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o render ./tests/go/render
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

type webhook struct {
	Method string `yaml:"method"`
	Path   string `yaml:"path"`
	Body   string `yaml:"body"`
}

type notification struct {
	Message string             `yaml:"message"`
	Webhook map[string]webhook `yaml:"webhook"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "render: "+format+"\n", args...)
	os.Exit(1)
}

func render(name, text string, funcs template.FuncMap, vars map[string]interface{}) string {
	t, err := template.New(name).Funcs(funcs).Parse(text)
	if err != nil {
		fail("parse %s: %v", name, err)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, vars); err != nil {
		fail("execute %s: %v", name, err)
	}
	return out.String()
}

func main() {
	if len(os.Args) != 5 {
		fail("usage: render <configmap.yaml> <template-name> <service-name> <vars.json>")
	}
	cmPath, templateName, service, varsPath := os.Args[1], os.Args[2], os.Args[3], os.Args[4]

	raw, err := os.ReadFile(cmPath)
	if err != nil {
		fail("%v", err)
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		fail("configmap: %v", err)
	}
	tmplYaml, ok := cm.Data["template."+templateName]
	if !ok {
		fail("no template.%s in %s", templateName, cmPath)
	}
	var n notification
	if err := yaml.Unmarshal([]byte(tmplYaml), &n); err != nil {
		fail("template.%s: %v", templateName, err)
	}
	wh, ok := n.Webhook[service]
	if !ok {
		fail("template.%s has no webhook.%s", templateName, service)
	}

	rawVars, err := os.ReadFile(varsPath)
	if err != nil {
		fail("%v", err)
	}
	vars := map[string]interface{}{}
	if err := json.Unmarshal(rawVars, &vars); err != nil {
		fail("vars: %v", err)
	}

	// As Argo CD: sprig without the functions that read the controller's environment.
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")

	method := wh.Method
	if method == "" {
		method = "GET"
	}
	out := map[string]string{
		"method": method,
		"path":   render(templateName+service, wh.Path, funcs, vars),
		"body":   render(templateName+service, wh.Body, funcs, vars),
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		fail("%v", err)
	}
}
