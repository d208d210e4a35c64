{{/* Name of the chart, for labels. */}}
{{- define "efs-csi.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "efs-csi.labels" -}}
app.kubernetes.io/name: {{ include "efs-csi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one component ("controller" or "node"); never change on upgrade. */}}
{{- define "efs-csi.selectorLabels" -}}
app.kubernetes.io/name: {{ include "efs-csi.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "efs-csi.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{/* The node image also serves the controller when the controller must mount file systems
     (deleteAccessPointRootDir with the efs backend): only that image carries efs-utils. */}}
{{- define "efs-csi.controllerImage" -}}
{{- $repository := .Values.image.controllerRepository -}}
{{- if and .Values.controller.deleteAccessPointRootDir (eq .Values.mountBackend "efs") -}}
{{- $repository = .Values.image.nodeRepository -}}
{{- end -}}
{{- printf "%s:%s" $repository (include "efs-csi.imageTag" .) -}}
{{- end -}}

{{- define "efs-csi.nodeImage" -}}
{{- printf "%s:%s" .Values.image.nodeRepository (include "efs-csi.imageTag" .) -}}
{{- end -}}

{{- define "efs-csi.sidecarImage" -}}
{{- printf "%s:%s" .image.repository .image.tag -}}
{{- end -}}

{{/* controller.tags as the --tags value: "k:v k2:v2", escaping \ : and space in each part. */}}
{{- define "efs-csi.tags" -}}
{{- $pairs := list -}}
{{- range $key, $value := . -}}
{{- $k := $key | replace "\\" "\\\\" | replace ":" "\\:" | replace " " "\\ " -}}
{{- $v := toString $value | replace "\\" "\\\\" | replace ":" "\\:" | replace " " "\\ " -}}
{{- $pairs = append $pairs (printf "%s:%s" $k $v) -}}
{{- end -}}
{{- join " " $pairs -}}
{{- end -}}

{{/* node.efsUtilsConfOverrides as "section:key=value,...". */}}
{{- define "efs-csi.confOverrides" -}}
{{- $items := list -}}
{{- range $section, $settings := . -}}
{{- range $key, $value := $settings -}}
{{- $items = append $items (printf "%s:%s=%v" $section $key $value) -}}
{{- end -}}
{{- end -}}
{{- join "," $items -}}
{{- end -}}

{{/* Environment both binaries share. */}}
{{- define "efs-csi.awsEnv" -}}
{{- if .Values.regionalStsEndpoints }}
- name: AWS_STS_REGIONAL_ENDPOINTS
  value: regional
{{- end }}
{{- if .Values.useFIPS }}
- name: AWS_USE_FIPS_ENDPOINT
  value: "true"
{{- end }}
{{- end -}}
