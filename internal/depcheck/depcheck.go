// Package depcheck exists only to pin module dependencies while the tree is young.
package depcheck

import (
	_ "github.com/apache/arrow-go/v18/arrow/ipc"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/spf13/cobra"
	_ "github.com/spf13/viper"
	_ "gonum.org/v1/gonum/blas/blas32"
	_ "gorgonia.org/gorgonia"
	_ "gorgonia.org/tensor"
)
