package eval

import (
	"fmt"
	"math"
)

// Paired compares two models task by task on the same tasks.
type Paired struct {
	Tasks  int // tasks compared
	Fixed  int // tasks the first model answered right and the second wrong
	Broken int // tasks the first model answered wrong and the second right
}

// Delta is the change in accuracy from the second model to the first:
// (Fixed − Broken) / Tasks.
func (p Paired) Delta() float64 { return float64(p.Fixed-p.Broken) / float64(p.Tasks) }

// P is the two-sided p-value of McNemar's exact test on the discordant
// tasks (McNemar).
func (p Paired) P() float64 { return McNemar(p.Fixed, p.Broken) }

// Compare pairs two models' per-task results (Score.Right), which must
// be for the same tasks in the same order.
func Compare(a, b []bool) (Paired, error) {
	if len(a) == 0 || len(a) != len(b) {
		return Paired{}, fmt.Errorf("eval: compare %d with %d per-task results", len(a), len(b))
	}
	p := Paired{Tasks: len(a)}
	for i := range a {
		switch {
		case a[i] && !b[i]:
			p.Fixed++
		case !a[i] && b[i]:
			p.Broken++
		}
	}
	return p, nil
}

// McNemar is the two-sided p-value of McNemar's exact test (McNemar 1947)
// on b tasks that went one way and c that went the other: under the null
// hypothesis the b+c discordant tasks split as Binomial(b+c, ½), and p is
// twice the probability of a split at least as uneven, at most 1.
func McNemar(b, c int) float64 {
	n, k := b+c, min(b, c)
	if n == 0 {
		return 1
	}
	// P(X ≤ k) = Σ_{i≤k} C(n, i) / 2ⁿ, summed in log space.
	lg, _ := math.Lgamma(float64(n + 1))
	var p float64
	for i := 0; i <= k; i++ {
		li, _ := math.Lgamma(float64(i + 1))
		lni, _ := math.Lgamma(float64(n - i + 1))
		p += math.Exp(lg - li - lni - float64(n)*math.Ln2)
	}
	return min(1, 2*p)
}

// StdErr is the standard error √(p(1−p)/n) of a proportion p measured on
// n trials (NaN when n is 0). For sampled answers, which come several per
// task and are not independent, it understates the error a little.
func StdErr(p float64, n int) float64 {
	if n == 0 {
		return math.NaN()
	}
	return math.Sqrt(p * (1 - p) / float64(n))
}
