// Command version prints Heartline's app metadata from FyneApp.toml for shell
// scripts, so they never parse the file themselves:
//
//	go run ./scripts/version            # 0.1.0
//	go run ./scripts/version -full      # 0.1.0 (abc1234)
//	go run ./scripts/version -field id  # chat.heartline.app
//	go run ./scripts/version -field gotags  # migrated_fynedo
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/heartline/heartline"
)

func main() {
	full := flag.Bool("full", false, "print the version with the commit it was built from")
	field := flag.String("field", "version", "metadata field to print: version, name, id, build, icon, comment, genericname, categories, keywords, gotags")
	flag.Parse()
	if *full {
		fmt.Println(heartline.VersionString())
		return
	}
	m := heartline.App()
	values := map[string]string{
		"version":     m.Version,
		"name":        m.Name,
		"id":          m.ID,
		"build":       strconv.Itoa(m.Build),
		"icon":        m.Icon,
		"comment":     m.Comment,
		"genericname": m.GenericName,
		// Semicolon-terminated, the form desktop entries use.
		"categories": join(m.Categories),
		"keywords":   join(m.Keywords),
		"gotags":     strings.Join(goTags(m.Migrations), ","),
	}
	v, ok := values[strings.ToLower(*field)]
	if !ok {
		fmt.Fprintf(os.Stderr, "version: unknown field %q; see -help\n", *field)
		os.Exit(2)
	}
	fmt.Println(v)
}

func join(items []string) string {
	if len(items) == 0 {
		return ""
	}
	return strings.Join(items, ";") + ";"
}

// goTags are the build tags Fyne's own `fyne build` derives from
// [Migrations], so a plain go build of the desktop app compiles the same code.
func goTags(migrations map[string]bool) []string {
	var tags []string
	if migrations["fyneDo"] {
		tags = append(tags, "migrated_fynedo")
	}
	return tags
}
