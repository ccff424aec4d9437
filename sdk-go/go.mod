module github.com/SlasshyOverhere/poolswitch/sdk-go

go 1.19
