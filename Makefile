# Thin wrapper around CMake. The two commands that matter:
#   make run    install what is missing, build Release, run on conf.d/ingestd.toml
#   make test   install what is missing, build with ASan+UBSan, run every test
BUILD ?= build
BUILD_TEST ?= build-test
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 30
JOBS ?= $(shell nproc)
CONFIG ?= conf.d/ingestd.toml

.PHONY: all deps build run test bench check-config format clean

all: build

deps:
	@packaging/install-deps

build: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DINGESTD_TESTS=OFF
	cmake --build $(BUILD)

run: build
	$(BUILD)/ingestd -c $(CONFIG) --plugins-dir $(BUILD)/plugins

check-config: build
	$(BUILD)/ingestd -t -c $(CONFIG) --plugins-dir $(BUILD)/plugins

test: deps
	cmake -S . -B $(BUILD_FUZZ) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DINGESTD_AREAS="json;tls;http" \
	  -DINGESTD_WERROR=ON \
	  -DINGESTD_TESTS=OFF
	cmake --build $(BUILD_FUZZ) --target json_fuzz http_fuzz tls_fuzz
	cmake -S . -B $(BUILD_TEST) -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" -DINGESTD_SANITIZE=ON -DINGESTD_WERROR=ON \
	  -DINGESTD_FUZZ_DIR=$(abspath $(BUILD_FUZZ)) -DINGESTD_FUZZ_SECONDS=$(FUZZ_SECONDS)
	cmake --build $(BUILD_TEST)
	ctest --test-dir $(BUILD_TEST) --output-on-failure -j $(JOBS)

# Benchmarks (not tests): the suite runs every scenario against its baseline
# in one invocation (nginx, redis-benchmark, the local peers) and writes
# bench/results/suite.json; bench/*/run run one area each.
bench: build
	@packaging/install-deps --bench
	@bench/suite/run --no-build

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(BUILD_TEST) $(BUILD_FUZZ)
