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

// Cholesky A = L·Lᵀ of a column-major symmetric matrix (lower triangle used
// and overwritten). Returns LAPACK's info: 0 on success, > 0 if not positive
// definite.
inline int potrf_lower(int n, float *a) { return LAPACKE_spotrf(LAPACK_COL_MAJOR, 'L', n, a, n); }
inline int potrf_lower(int n, double *a) { return LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n, a, n); }

// In-place inverse of a column-major lower-triangular matrix.
inline int trtri_lower(int n, float *a) {
  return LAPACKE_strtri(LAPACK_COL_MAJOR, 'L', 'N', n, a, n);
}
inline int trtri_lower(int n, double *a) {
  return LAPACKE_dtrtri(LAPACK_COL_MAJOR, 'L', 'N', n, a, n);
}

// Solves X·Mᵀ = B in place (B row-major [m, n], ldb), M upper-triangular
// row-major [n, n] with leading dimension ldm — i.e. M is a column-major
// lower-triangular L seen row-major, and this solves X·L = B.
inline void trsm_right_lower_colmajor(int m, int n, const float *l, int ldl, float *b, int ldb) {
  cblas_strsm(CblasRowMajor, CblasRight, CblasUpper, CblasTrans, CblasNonUnit, m, n, 1.0f, l, ldl,
              b, ldb);
}
inline void trsm_right_lower_colmajor(int m, int n, const double *l, int ldl, double *b, int ldb) {
  cblas_dtrsm(CblasRowMajor, CblasRight, CblasUpper, CblasTrans, CblasNonUnit, m, n, 1.0, l, ldl,
              b, ldb);
}

}  // namespace gptq::cpu
