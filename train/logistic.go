package train

import "math"

// Softplus is log(1 + eˣ) = −log σ(−x), computed without overflow; at 0 it
// is exactly log 2. It is the loss of the logistic (Bradley–Terry) losses
// of preference training: −log σ(u) = Softplus(−u).
func Softplus(x float64) float64 {
	if x > 0 {
		return x + math.Log1p(math.Exp(-x))
	}
	return math.Log1p(math.Exp(x))
}

// Sigmoid is σ(x) = 1/(1 + e⁻ˣ), computed without overflow; it is the
// derivative of Softplus.
func Sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}
