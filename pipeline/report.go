package pipeline

import (
	"bufio"
	"encoding/json"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/gotune/gotune/checkpoints/atomicfile"
)

// PlottedMetrics are the metric names the report draws, each in its own
// figure with the train series and, when present, its held-out ("eval_")
// counterpart. Names follow TRL.
var PlottedMetrics = []string{
	"loss", "learning_rate",
	"rewards/margins", "rewards/accuracies",
	"accuracy", "margin",
	"objective/kl", "objective/scores", "objective/rlhf_reward",
	"reward", "kl",
}

// Series is one metric of one stage over steps.
type Series struct {
	Stage, Metric string
	Steps, Values []float64
}

// ReadMetrics reads a metrics.jsonl file into a series per key (the "step"
// key is the x axis; rows without it use their line number).
func ReadMetrics(path string) (map[string]*Series, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	defer f.Close()
	out := map[string]*Series{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	line := 0
	for sc.Scan() {
		line++
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return nil, fmt.Errorf("read metrics %s: line %d: %w", path, line, err)
		}
		step := float64(line)
		if s, ok := row["step"].(float64); ok {
			step = s
		}
		for k, v := range row {
			x, ok := v.(float64)
			if !ok || k == "step" || math.IsNaN(x) || math.IsInf(x, 0) {
				continue
			}
			s := out[k]
			if s == nil {
				s = &Series{Metric: k}
				out[k] = s
			}
			s.Steps = append(s.Steps, step)
			s.Values = append(s.Values, x)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics %s: %w", path, err)
	}
	return out, nil
}

// Figure is one PNG of the report.
type Figure struct {
	File   string // relative to the report directory
	Title  string
	Series []*Series
}

// Summary is one row of the report's results table.
type Summary struct {
	Label, Value, Note string
}

// WriteReport draws every plotted metric of every stage directory under
// runDir that has a metrics.jsonl into <runDir>/report/*.png and writes
// <runDir>/report/index.html with the figures and the summary rows. It
// returns the figures it drew.
func WriteReport(runDir string, summary []Summary) ([]Figure, error) {
	outDir := filepath.Join(runDir, "report")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	entries, err := os.ReadDir(runDir)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	var figs []Figure
	for _, e := range entries {
		path := filepath.Join(runDir, e.Name(), "metrics.jsonl")
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			continue
		}
		metrics, err := ReadMetrics(path)
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		for _, name := range PlottedMetrics {
			var ss []*Series
			for _, k := range []string{name, "eval_" + name} {
				if s := metrics[k]; s != nil && len(s.Values) > 0 {
					s.Stage = e.Name()
					ss = append(ss, s)
				}
			}
			if len(ss) == 0 {
				continue
			}
			fig := Figure{
				File:   fmt.Sprintf("%s_%s.png", e.Name(), strings.NewReplacer("/", "_").Replace(name)),
				Title:  fmt.Sprintf("%s: %s", e.Name(), name),
				Series: ss,
			}
			if err := drawFigure(filepath.Join(outDir, fig.File), fig); err != nil {
				return nil, fmt.Errorf("report %s: %w", fig.File, err)
			}
			figs = append(figs, fig)
		}
	}
	sort.SliceStable(figs, func(i, j int) bool { return figs[i].File < figs[j].File })
	var sb strings.Builder
	if err := reportPage.Execute(&sb, struct {
		Run     string
		Summary []Summary
		Figures []Figure
	}{filepath.Base(runDir), summary, figs}); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(outDir, "index.html"), []byte(sb.String())); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	return figs, nil
}

func drawFigure(path string, fig Figure) error {
	p := plot.New()
	p.Title.Text = fig.Title
	p.X.Label.Text = "step"
	p.Y.Label.Text = fig.Series[0].Metric
	p.Add(plotter.NewGrid())
	for i, s := range fig.Series {
		xys := make(plotter.XYs, len(s.Values))
		for j := range s.Values {
			xys[j].X, xys[j].Y = s.Steps[j], s.Values[j]
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		c := plotutil.Color(i)
		line.Color, points.Color = c, c
		points.Radius = vg.Points(1.5)
		if len(xys) > 60 {
			points.Color = color.Transparent
		}
		p.Add(line, points)
		p.Legend.Add(s.Metric, line)
	}
	p.Legend.Top = true
	tmp := path + ".tmp.png"
	if err := p.Save(6*vg.Inch, 3.5*vg.Inch, tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

var reportPage = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>gotune run {{.Run}}</title>
<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}img{max-width:100%}</style>
</head><body>
<h1>gotune run {{.Run}}</h1>
{{if .Summary}}<h2>Results</h2>
<table><tr><th>measure</th><th>value</th><th>note</th></tr>
{{range .Summary}}<tr><td>{{.Label}}</td><td>{{.Value}}</td><td>{{.Note}}</td></tr>
{{end}}</table>{{end}}
<h2>Training curves</h2>
{{range .Figures}}<figure><img src="{{.File}}" alt="{{.Title}}"><figcaption>{{.Title}}</figcaption></figure>
{{end}}
</body></html>
`))
