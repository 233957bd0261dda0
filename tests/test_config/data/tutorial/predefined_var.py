work_dir = './work_dir/{{fileBasenameNoExtension}}'
here = '{{fileDirname}}'
file_name = '{{fileBasename}}'
extension = '{{fileExtname}}'
