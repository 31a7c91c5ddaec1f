module example.invalid/libgptq/bindings/go

go 1.19
