package train_test

import (
	"context"
	"fmt"
	"os"

	"github.com/gotune/gotune/train"
)

// Fit y = 3x with one weight: the StepFunc adds the gradient of the
// micro-batch's mean squared error, the Loop does the rest.
func ExampleLoop() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	w, grad := []float32{0}, []float32{0}
	xs := []float32{1, 2, 3, 4}
	cfg := train.DefaultConfig()
	cfg.Dir, cfg.Steps, cfg.LR, cfg.Quiet = dir, 300, 0.1, true
	loop := &train.Loop{
		Config: cfg,
		Params: []train.Param{{Name: "w", Value: w, Grad: func() []float32 { return grad }}},
		Step: func(ctx context.Context, step, micro int) (train.Metrics, error) {
			var loss float64
			for _, x := range xs {
				e := w[0]*x - 3*x
				loss += float64(e*e) / 2 / float64(len(xs))
				grad[0] += e * x / float32(len(xs))
			}
			return train.Metrics{train.KeyLoss: loss, train.KeyTokens: float64(len(xs))}, nil
		},
		ZeroGrad: func() { grad[0] = 0 },
	}
	if err := loop.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	fmt.Printf("w = %.2f after %d updates\n", w[0], loop.StepsDone())
	// Output: w = 3.00 after 300 updates
}
