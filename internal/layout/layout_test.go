package layout

import (
	"bufio"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// layer is one row of the architecture: the package directories it holds
// (relative to the module root) and the layers their non-test files may
// import.
type layer struct {
	name      string
	pkgs      []string
	mayImport []string
	rule      string // the rule in words, quoted when an import breaks it
}

// layers is the module's architecture, highest layer first. A package may
// import the packages of the layers its own layer's mayImport names (its
// own layer only where listed), and always those under its own top-level
// directory in its own layer (a stage's subpackages). A new package (a new
// stage such as grpo included) is added to the pkgs of its layer.
// Directories that do not exist yet are allowed here, so a package can be
// placed before it is written. The "May import:" line of each package's doc comment and the
// Layout section of README.md state the same rules in words.
var layers = []layer{
	{
		name:      "application",
		pkgs:      []string{"cmd/gotune", "pipeline", "serve"},
		mayImport: []string{"application", "stage", "shared", "model", "tokenizer", "data", "format", "internal"},
		rule:      "an application may import every layer but the test helpers",
	},
	{
		name:      "stage",
		pkgs:      []string{"pretrain", "selfinstruct", "sft", "onpolicy", "reward", "dpo", "ppo", "grpo", "export", "eval"},
		mayImport: []string{"shared", "model", "tokenizer", "data", "format", "internal"},
		rule:      "a stage imports no other stage, nor the pipeline, serve or cmd",
	},
	{
		name:      "shared",
		pkgs:      []string{"finetune", "train", "lora"},
		mayImport: []string{"shared", "model", "tokenizer", "data", "format", "internal"},
		rule:      "the shared fine-tuning layer (finetune, train, lora) imports no stage or application",
	},
	{
		name:      "model",
		pkgs:      []string{"model", "model/ops", "model/ops/internal/vec", "model/hf", "model/gguf", "model/generate"},
		mayImport: []string{"model", "tokenizer", "format", "internal"},
		rule:      "the model imports no data, no shared fine-tuning layer (finetune, train, lora), no stage and no application",
	},
	{
		name:      "tokenizer",
		pkgs:      []string{"tokenizer", "tokenizer/jinja"},
		mayImport: []string{"tokenizer", "data", "format", "internal"},
		rule:      "tokenizers import no model, shared fine-tuning layer, stage or application",
	},
	{
		name:      "data",
		pkgs:      []string{"data", "data/world", "data/verify"},
		mayImport: []string{"data", "tokenizer", "format", "internal"},
		rule:      "data imports no model, shared fine-tuning layer, stage or application",
	},
	{
		name:      "format",
		pkgs:      []string{"checkpoints", "checkpoints/safetensors", "checkpoints/atomicfile", "checkpoints/gguf"},
		mayImport: []string{"format", "internal"},
		rule:      "file formats know tensors and bytes: they import neither model nor data nor tokenizer nor anything above",
	},
	{
		name:      "internal",
		pkgs:      []string{"internal/blas", "internal/kernel", "internal/bf16", "internal/f16", "internal/q8", "internal/hugepage", "internal/benchutil", "internal/benchtable", "internal/benchplot", "internal/layout", "internal/mpi", "internal/reference"},
		mayImport: []string{"internal"},
		rule:      "internal helpers import nothing of the module's upper layers",
	},
	{
		name:      "test helper",
		pkgs:      []string{"internal/tinymodel", "internal/configtest", "internal/mpi/mpitest"},
		mayImport: []string{"model", "tokenizer", "format", "internal"},
		rule:      "a test helper may import the model (model/generate included), tokenizers, file formats and internal helpers",
	},
	{
		name:      "stage test helper",
		pkgs:      []string{"internal/stagetest"},
		mayImport: []string{"shared", "model", "tokenizer", "format", "internal", "test helper"},
		rule:      "the stages' test helper may import the shared fine-tuning layer and below, never a stage",
	},
}

// TestLayers fails for every import of the module's non-test files that its
// layer does not allow, and for every package directory no layer holds.
func TestLayers(t *testing.T) {
	root, module, err := findModule()
	if err != nil {
		t.Fatal(err)
	}
	graph, err := importGraph(root, module)
	if err != nil {
		t.Fatal(err)
	}
	// Guard against a walk that finds nothing and so passes vacuously.
	if !slices.Contains(graph["cmd/gotune"], "pipeline") {
		t.Fatalf("the import graph of %s lacks cmd/gotune → pipeline; is the walk broken? graph: %v", root, graph)
	}
	for _, v := range check(graph, layers) {
		t.Error(v)
	}
}

// TestCheckReports feeds the checker a made-up import graph and requires
// exactly its violations, so that TestLayers can fail.
func TestCheckReports(t *testing.T) {
	graph := map[string][]string{
		"cmd/gotune":              {"pipeline", "sft", "data/world"},
		"pipeline":                {"sft", "ppo", "data/world"},
		"sft":                     {"finetune", "data", "data/world", "model", "ppo"}, // stage → stage
		"ppo":                     {"reward", "pipeline", "model/generate"},           // stage → stage, stage → application
		"reward":                  {"finetune"},
		"eval":                    {"eval/score", "model/generate", "data/verify"}, // its own subpackage
		"eval/score":              {"data"},
		"onpolicy":                {"eval/score"}, // stage → another stage's subpackage
		"finetune":                {"lora", "train", "model", "tokenizer"},
		"lora":                    {"model", "checkpoints/safetensors"},
		"train":                   {"checkpoints/safetensors", "sft"}, // shared → stage
		"model":                   {"internal/blas", "data"},          // model → data
		"model/generate":          {"model", "internal/kernel"},
		"data":                    {"tokenizer"},
		"data/world":              nil,
		"data/verify":             {"data"},
		"tokenizer":               {"model"},                           // tokenizer → model
		"checkpoints/safetensors": {"checkpoints/atomicfile", "model"}, // format → model
		"checkpoints/atomicfile":  nil,
		"internal/blas":           {"internal/kernel", "model/ops"}, // internal → model
		"internal/kernel":         nil,
		"internal/tinymodel":      {"model", "model/generate", "tokenizer", "data"}, // test helper → data
		"model/ops":               {"internal/blas"},
		"kto":                     {"finetune"}, // not placed
	}
	want := []string{
		"checkpoints/safetensors → model",
		"internal/blas → model/ops",
		"internal/tinymodel → data",
		"kto: in no layer",
		"model → data",
		"onpolicy → eval/score",
		"ppo → pipeline",
		"ppo → reward",
		"sft → ppo",
		"tokenizer → model",
		"train → sft",
	}
	// The stage layer holds a subpackage here, as a stage with one would.
	table := slices.Clone(layers)
	for i, l := range table {
		if l.name == "stage" {
			table[i].pkgs = append(slices.Clone(l.pkgs), "eval/score")
		}
	}
	var got []string
	for _, v := range check(graph, table) {
		if v.rule == "" {
			got = append(got, v.from+": in no layer")
		} else {
			got = append(got, v.from+" → "+v.to)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("violations:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	// The message names both packages, both layers and the rule.
	for _, v := range check(graph, table) {
		if v.from == "sft" && v.to == "ppo" {
			const msg = "sft (stage) imports ppo (stage): a stage imports no other stage, nor the pipeline, serve or cmd"
			if v.String() != msg {
				t.Errorf("message %q, want %q", v.String(), msg)
			}
		}
	}
}

// TestTable checks the table itself: every package in one layer only, every
// layer named once, and mayImport naming only layers of the table.
func TestTable(t *testing.T) {
	names := map[string]bool{}
	placed := map[string]string{}
	for _, l := range layers {
		if names[l.name] {
			t.Errorf("layer %q appears twice", l.name)
		}
		names[l.name] = true
		if l.rule == "" {
			t.Errorf("layer %q states no rule", l.name)
		}
		for _, p := range l.pkgs {
			if other, ok := placed[p]; ok {
				t.Errorf("%s is placed in layer %q and in layer %q", p, other, l.name)
			}
			placed[p] = l.name
		}
	}
	for _, l := range layers {
		for _, m := range l.mayImport {
			if !names[m] {
				t.Errorf("layer %q may import layer %q, which the table lacks", l.name, m)
			}
		}
	}
}

// TestImportGraph builds the graph of a small module written for the test:
// only module imports of non-test files count, and testdata, hidden
// directories and nested modules are skipped.
func TestImportGraph(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"go.mod":              "module example.com/m\n\ngo 1.22\n",
		"a/a.go":              "package a\n\nimport (\n\t\"fmt\"\n\t\"example.com/m/b\"\n\t_ \"example.com/m/b/c\"\n)\n",
		"a/a_test.go":         "package a\n\nimport \"example.com/m/d\"\n",
		"a/testdata/x/x.go":   "package x\n\nimport \"example.com/m/d\"\n",
		"b/b.go":              "package b\n",
		"b/c/c.go":            "package c\n\nimport \"example.com/mod/other\"\n",
		"d/d_test.go":         "package d\n",
		".hidden/h.go":        "package h\n\nimport \"example.com/m/d\"\n",
		"nested/go.mod":       "module example.com/nested\n",
		"nested/n.go":         "package n\n\nimport \"example.com/m/d\"\n",
		"nested/inner/i.go":   "package inner\n\nimport \"example.com/m/d\"\n",
		"a/README.md":         "not Go",
		"b/c/notgo.go.orig":   "package c\n\nimport \"example.com/m/d\"\n",
		"b/c/generated_by.go": "package c\n\nimport \"example.com/m\"\n",
	}
	for name, text := range files {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	module, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if module != "example.com/m" {
		t.Fatalf("module path %q, want example.com/m", module)
	}
	graph, err := importGraph(root, module)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"a": {"b", "b/c"}, "b": nil, "b/c": {"."}}
	if fmt.Sprint(graph) != fmt.Sprint(want) {
		t.Errorf("graph %v, want %v", graph, want)
	}
}

// violation is an import its importer's layer does not allow or, with no
// rule, a package directory no layer holds.
type violation struct {
	from, fromLayer string
	to, toLayer     string
	rule            string
}

func (v violation) String() string {
	if v.rule == "" {
		return fmt.Sprintf("%s is in no layer: place it in the layers table of internal/layout/layout_test.go", v.from)
	}
	return fmt.Sprintf("%s (%s) imports %s (%s): %s", v.from, v.fromLayer, v.to, v.toLayer, v.rule)
}

// check returns the violations of graph (package directory → the module
// package directories it imports) against the table, sorted by importer
// and imported package.
func check(graph map[string][]string, table []layer) []violation {
	layerOf := map[string]*layer{}
	for i := range table {
		for _, p := range table[i].pkgs {
			layerOf[p] = &table[i]
		}
	}
	var out []violation
	unplaced := map[string]bool{}
	for from, imports := range graph {
		fl := layerOf[from]
		if fl == nil {
			unplaced[from] = true
			continue
		}
		for _, to := range imports {
			tl := layerOf[to]
			if tl == nil {
				unplaced[to] = true
				continue
			}
			if slices.Contains(fl.mayImport, tl.name) || fl == tl && topDir(from) == topDir(to) {
				continue
			}
			out = append(out, violation{from: from, fromLayer: fl.name, to: to, toLayer: tl.name, rule: fl.rule})
		}
	}
	for p := range unplaced {
		out = append(out, violation{from: p})
	}
	slices.SortFunc(out, func(a, b violation) int {
		if c := strings.Compare(a.from, b.from); c != 0 {
			return c
		}
		return strings.Compare(a.to, b.to)
	})
	return out
}

// topDir is the first element of a module-relative package path.
func topDir(pkg string) string {
	top, _, _ := strings.Cut(pkg, "/")
	return top
}

// findModule walks up from the test's directory to the go.mod of the
// module and returns its directory and module path.
func findModule() (root, module string, err error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", "", err
	}
	for {
		gomod := filepath.Join(dir, "go.mod")
		if _, err := os.Stat(gomod); err == nil {
			module, err := modulePath(gomod)
			return dir, module, err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// modulePath reads the module directive of a go.mod file.
func modulePath(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "module"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			path := strings.TrimSpace(rest)
			if unq, err := strconv.Unquote(path); err == nil {
				path = unq
			}
			return path, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading %s: %w", gomod, err)
	}
	return "", fmt.Errorf("%s has no module directive", gomod)
}

// importGraph parses the import clauses of every non-test .go file under
// root and returns each package directory (relative to root, slash-
// separated, "." for root itself) with the module packages its files import,
// relative to root the same way, sorted. Files of every build constraint
// count, so that each platform's variant is checked. testdata, directories
// whose name starts with "." or "_" (which the go tool ignores too) and
// nested modules are skipped.
func importGraph(root, module string) (map[string][]string, error) {
	fset := token.NewFileSet()
	graph := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			if name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		imports := graph[pkg]
		for _, spec := range f.Imports {
			ip, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return fmt.Errorf("%s: import %s: %w", path, spec.Path.Value, err)
			}
			var to string
			switch {
			case ip == module:
				to = "."
			case strings.HasPrefix(ip, module+"/"):
				to = strings.TrimPrefix(ip, module+"/")
			default:
				continue
			}
			if !slices.Contains(imports, to) {
				imports = append(imports, to)
			}
		}
		slices.Sort(imports)
		graph[pkg] = imports
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the imports under %s: %w", root, err)
	}
	return graph, nil
}
