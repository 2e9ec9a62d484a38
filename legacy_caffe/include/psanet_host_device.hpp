#ifndef PSANET_CAFFE_HOST_DEVICE_HPP_
#define PSANET_CAFFE_HOST_DEVICE_HPP_

// Marks small helpers shared by the .cpp and .cu sides of the PSANet layers.
#ifdef __CUDACC__
#define PSANET_HOST_DEVICE __host__ __device__
#else
#define PSANET_HOST_DEVICE
#endif

#endif  // PSANET_CAFFE_HOST_DEVICE_HPP_
