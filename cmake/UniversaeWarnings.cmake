# Warnings and sanitizers as INTERFACE targets: link them, never set global flags.
add_library(universae_warnings INTERFACE)
target_compile_options(universae_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align
                            -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough>)

add_library(universae_sanitizers INTERFACE)
if(UNIVERSAE_SANITIZE)
  target_compile_options(universae_sanitizers INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(universae_sanitizers INTERFACE -fsanitize=address,undefined)
endif()
if(UNIVERSAE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "UNIVERSAE_FUZZ needs clang (libFuzzer); configure with the asan preset")
  endif()
  # Coverage instrumentation for the library; fuzz targets link the libFuzzer driver themselves.
  target_compile_options(universae_sanitizers INTERFACE -fsanitize=fuzzer-no-link)
endif()
