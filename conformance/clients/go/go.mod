module github.com/SlasshyOverhere/poolswitch/conformance/clients/go

go 1.19

require github.com/SlasshyOverhere/poolswitch/sdk-go v0.0.0

replace github.com/SlasshyOverhere/poolswitch/sdk-go => ../../../sdk-go
