// Command benchplot reads the output of the attention benchmarks
// (BenchmarkAttentionTrain: one training step of B·T tokens at sequence
// length T, for softmax, linear and GAU attention), passes it through, and
// draws how each attention's cost and memory grow with T: training tokens
// per CPU-second and peak resident set against T, one line per attention,
// as OUT-train.png and OUT-memory.png. `go tool task bench-attention`
// pipes into it.
//
// May import: the other internal helpers; nothing of the module's upper
// layers.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// point is one benchmark case: an attention at one sequence length.
type point struct {
	T               int
	tokPerCPUSecond float64
	peakRSSMiB      float64
}

// trainLine matches a BenchmarkAttentionTrain result line.
var trainLine = regexp.MustCompile(`^BenchmarkAttentionTrain/(\w+)/T=(\d+)(?:-\d+)?\s+\d+\s+(.*)$`)

// metric matches one "value unit" pair of a benchmark line.
var metric = regexp.MustCompile(`([0-9.eE+-]+) ([^\s]+)`)

// parse reads benchmark output, copying it to w, and returns the training
// cases by attention. A training line without the metrics it needs is an
// error naming it.
func parse(r io.Reader, w io.Writer) (map[string][]point, error) {
	out := map[string][]point{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fmt.Fprintln(w, line)
		m := trainLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		T, _ := strconv.Atoi(m[2])
		vals := map[string]float64{}
		for _, kv := range metric.FindAllStringSubmatch(m[3], -1) {
			if v, err := strconv.ParseFloat(kv[1], 64); err == nil {
				vals[kv[2]] = v
			}
		}
		nsPerOp, tokPerS, cpuPerOp, rss := vals["ns/op"], vals["tok/s"], vals["cpu-s/op"], vals["peakRSS-MiB"]
		if nsPerOp <= 0 || tokPerS <= 0 || cpuPerOp <= 0 || rss <= 0 {
			return nil, fmt.Errorf("line %d: want ns/op, tok/s, cpu-s/op and peakRSS-MiB: %q", n, line)
		}
		tokPerOp := tokPerS * nsPerOp / 1e9
		out[m[1]] = append(out[m[1]], point{T: T, tokPerCPUSecond: tokPerOp / cpuPerOp, peakRSSMiB: rss})
	}
	return out, sc.Err()
}

// draw saves one figure of a metric against T (log₂ axis).
func draw(path, title, ylabel string, cases map[string][]point, y func(point) float64) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "sequence length T"
	p.Y.Label.Text = ylabel
	p.X.Scale = plot.LogScale{}
	var ticks []plot.Tick
	for _, pts := range cases {
		for _, q := range pts {
			if !slices.ContainsFunc(ticks, func(t plot.Tick) bool { return t.Value == float64(q.T) }) {
				ticks = append(ticks, plot.Tick{Value: float64(q.T), Label: strconv.Itoa(q.T)})
			}
		}
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	names := make([]string, 0, len(cases))
	for k := range cases {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, name := range names {
		pts := slices.Clone(cases[name])
		slices.SortFunc(pts, func(a, b point) int { return a.T - b.T })
		xys := make(plotter.XYs, len(pts))
		for j, q := range pts {
			xys[j].X, xys[j].Y = float64(q.T), y(q)
		}
		line, dots, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		line.Color, dots.Color = plotutil.Color(i), plotutil.Color(i)
		p.Add(line, dots)
		p.Legend.Add(name, line)
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p.Save(5*vg.Inch, 3.2*vg.Inch, path)
}

func main() {
	out := flag.String("out", "", "write OUT-train.png and OUT-memory.png (required)")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "benchplot: -out is required")
		os.Exit(2)
	}
	cases, err := parse(os.Stdin, os.Stdout)
	if err == nil && len(cases) == 0 {
		err = fmt.Errorf("no BenchmarkAttentionTrain lines in the input")
	}
	if err == nil {
		err = draw(*out+"-train.png", "Training cost against sequence length", "tokens per CPU-second", cases,
			func(q point) float64 { return q.tokPerCPUSecond })
	}
	if err == nil {
		err = draw(*out+"-memory.png", "Training memory against sequence length", "peak RSS (MiB)", cases,
			func(q point) float64 { return q.peakRSSMiB })
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchplot: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "benchplot: wrote %s-train.png and %s-memory.png\n", *out, *out)
}
