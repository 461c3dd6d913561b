-- agop.io: the first name of agop.files (tensors in .npy and .safetensors files), kept
-- so that require('agop.io') and agop.io go on working. New code: require('agop.files').
return require('agop.files')
