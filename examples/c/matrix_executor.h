/*
 * A small but real executor written in C: module "matrix" with
 *   zeros(rows, cols), eye(n), matmul(a, b), full(rows, cols, value)
 * returning float64 matrices. Arguments may be ints, floats, references to
 * matrices (proxies, or promises of a pipelined call's result), or float64
 * numpy arrays; materialize gives a float64 ndarray and m[i] gives row i.
 */
#ifndef MATRIX_EXECUTOR_H
#define MATRIX_EXECUTOR_H

#include "simplerpc.h"

/* The executor's callbacks (userdata unused; all state is per session). */
srpc_executor matrix_executor(void);

#endif
