// Thin precision-overloaded wrappers over CBLAS and LAPACKE, so the CPU
// algorithms are written once as templates over float and double.
#pragma once

#include <cblas.h>
#include <lapacke.h>

namespace gptq::cpu {

// C[m,n] = alpha·A[m,k]·op(B) + beta·C, all row-major; B is [k,n], or [n,k]
// when trans_b.
inline void gemm(bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a,
              lda, b, ldb, beta, c, ldc);
}
inline void gemm(bool trans_b, int m, int n, int k, double alpha, const double *a, int lda,
                 const double *b, int ldb, double beta, double *c, int ldc) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a,
              lda, b, ldb, beta, c, ldc);
}

// Upper triangle of C[n,n] = alpha·Aᵀ·A + beta·C, A row-major [k, n].
inline void syrk_upper_at_a(int n, int k, float alpha, const float *a, float beta, float *c) {
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, k, alpha, a, n, beta, c, n);
}
inline void syrk_upper_at_a(int n, int k, double alpha, const double *a, double beta, double *c) {
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, k, alpha, a, n, beta, c, n);
}

// Cholesky A = L·Lᵀ of a symmetric matrix whose lower triangle is stored
// row-major (a[i·n + j], j <= i), overwritten by L in the same places. To
// LAPACK that is the column-major upper triangle, factored as A = Uᵀ·U with
// U = Lᵀ. The _work form: the caller's matrix is finite by construction, and
// LAPACKE's NaN scan of the whole triangle would read it once more. Returns
// LAPACK's info: 0 on success, > 0 if not positive definite.
inline int potrf_lower_rowmajor(int n, float *a) {
  return LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'U', n, a, n);
}
inline int potrf_lower_rowmajor(int n, double *a) {
  return LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'U', n, a, n);
}

// In-place inverse of a column-major lower-triangular matrix.
inline int trtri_lower(int n, float *a) {
  return LAPACKE_strtri(LAPACK_COL_MAJOR, 'L', 'N', n, a, n);
}
inline int trtri_lower(int n, double *a) {
  return LAPACKE_dtrtri(LAPACK_COL_MAJOR, 'L', 'N', n, a, n);
}

// Solves X·L = B in place (B row-major [m, n], ldb) for L lower-triangular,
// row-major [n, n] with leading dimension ldl.
inline void trsm_right_lower_rowmajor(int m, int n, const float *l, int ldl, float *b, int ldb) {
  cblas_strsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, m, n, 1.0f, l, ldl,
              b, ldb);
}
inline void trsm_right_lower_rowmajor(int m, int n, const double *l, int ldl, double *b, int ldb) {
  cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, m, n, 1.0, l, ldl,
              b, ldb);
}

// B := B·M in place (B row-major [m, n], ldb) for M lower-triangular,
// column-major [n, n] with leading dimension ldm (row-major that is Mᵀ,
// upper).
inline void trmm_right_lower_colmajor(int m, int n, const float *lower, int ldm, float *b,
                                      int ldb) {
  cblas_strmm(CblasRowMajor, CblasRight, CblasUpper, CblasTrans, CblasNonUnit, m, n, 1.0f, lower,
              ldm, b, ldb);
}
inline void trmm_right_lower_colmajor(int m, int n, const double *lower, int ldm, double *b,
                                      int ldb) {
  cblas_dtrmm(CblasRowMajor, CblasRight, CblasUpper, CblasTrans, CblasNonUnit, m, n, 1.0, lower,
              ldm, b, ldb);
}

}  // namespace gptq::cpu
